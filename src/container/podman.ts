/**
 * Podman's command line as typed calls: inspect, info, list. Every call runs podman with the
 * environment u2cm was started with plus the node's own (see {@linkcode PodmanNode}).
 *
 * @example
 * ```ts
 * const node = defaultPodmanNode();
 * const info = await podmanStore(node);
 * console.log(info.graphRoot, info.version);
 * ```
 *
 * @module
 */
import { runRuntime, type RunRuntimeOptions } from "./command.ts";
import { withCriuOnPath } from "./criu_path.ts";
import type { ContainerInfo, ContainerMount, PodmanNode } from "./types.ts";

/** The podman node u2cm's own environment describes (`podman` on PATH, no extra variables). */
export function defaultPodmanNode(): PodmanNode {
  return { bin: "podman", env: {} };
}

/** Run podman on `node`; resolves with stdout. */
export function podman(
  node: PodmanNode,
  args: string[],
  options: Omit<RunRuntimeOptions, "env"> = {},
): Promise<string> {
  return runRuntime(node.bin, args, { ...options, env: withCriuOnPath(node.env) });
}

/** Where a podman node keeps its containers, and its versions. */
export interface PodmanStore {
  /** Storage graph root. */
  graphRoot: string;
  /** Storage run root. */
  runRoot: string;
  /** Podman version. */
  version: string;
  /** Name of the default OCI runtime. */
  ociRuntime: string;
  /** Path of that runtime. */
  ociRuntimePath: string;
  /** Cgroup manager (cgroupfs, systemd). */
  cgroupManager: string;
}

/** `podman info` of `node`, reduced to what migration needs. */
export async function podmanStore(
  node: PodmanNode,
  options: { signal?: AbortSignal } = {},
): Promise<PodmanStore> {
  const info = JSON.parse(await podman(node, ["info", "--format", "json"], options));
  return {
    graphRoot: String(info.store?.graphRoot ?? ""),
    runRoot: String(info.store?.runRoot ?? ""),
    version: String(info.version?.Version ?? ""),
    ociRuntime: String(info.host?.ociRuntime?.name ?? ""),
    ociRuntimePath: String(info.host?.ociRuntime?.path ?? ""),
    cgroupManager: String(info.host?.cgroupManager ?? ""),
  };
}

/**
 * `podman inspect --type container REF` as a {@linkcode ContainerInfo}, or undefined when the
 * node has no such container.
 */
export async function inspectPodmanContainer(
  node: PodmanNode,
  ref: string,
  options: { signal?: AbortSignal } = {},
): Promise<ContainerInfo | undefined> {
  let out: string;
  try {
    out = await podman(node, ["container", "inspect", ref], options);
  } catch (e) {
    if (/no such (container|object)/i.test(String((e as Error).message))) return undefined;
    throw e;
  }
  const list = JSON.parse(out);
  const c = Array.isArray(list) ? list[0] : undefined;
  if (!c) return undefined;
  const ports: string[] = [];
  for (const [key, binds] of Object.entries(c.HostConfig?.PortBindings ?? {})) {
    for (const b of (binds as { HostPort?: string }[] | null) ?? []) {
      ports.push(`${b.HostPort ?? ""}:${key}`);
    }
  }
  const mounts: ContainerMount[] = [];
  for (const m of c.Mounts ?? []) {
    if (m.Type !== "volume" && m.Type !== "bind") continue;
    mounts.push({
      type: m.Type,
      ...(m.Type === "volume" ? { name: String(m.Name) } : {}),
      source: String(m.Source),
      destination: String(m.Destination),
    });
  }
  return {
    name: String(c.Name),
    id: String(c.Id),
    runtime: "podman",
    image: String(c.ImageName ?? ""),
    imageId: String(c.Image ?? ""),
    initPid: Number(c.State?.Pid ?? 0),
    state: String(c.State?.Status ?? "unknown"),
    networkMode: String(c.HostConfig?.NetworkMode ?? ""),
    ports,
    mounts,
  };
}

/** A container as `podman ps` lists it. */
export interface PodmanListed {
  /** Full ID. */
  id: string;
  /** Name. */
  name: string;
  /** Image name. */
  image: string;
  /** State (running, exited, …). */
  state: string;
  /** Host pid of its init (0 when not running). */
  pid: number;
}

/** The containers of `node` (`all`: stopped ones too). */
export async function listPodmanContainers(
  node: PodmanNode,
  options: { all?: boolean; signal?: AbortSignal } = {},
): Promise<PodmanListed[]> {
  const args = ["ps", "--format", "json", ...(options.all ? ["--all"] : [])];
  const list = JSON.parse(await podman(node, args, { signal: options.signal }) || "[]");
  return (list as Record<string, unknown>[]).map((c) => ({
    id: String(c.Id),
    name: String((c.Names as string[] | undefined)?.[0] ?? ""),
    image: String(c.Image ?? ""),
    state: String(c.State ?? ""),
    pid: Number(c.Pid ?? 0),
  }));
}
