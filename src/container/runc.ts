/**
 * runc as a runtime of its own: containers started from an OCI bundle with `runc run`, found in
 * runc's state directory (`--root`). The bundle must be present on the destination at the same
 * path (checked before freezing).
 *
 * @example
 * ```ts
 * const node = defaultRuncNode();
 * const c = await inspectRuncContainer(node, "web");
 * console.log(c?.initPid, c?.bundle);
 * ```
 *
 * @module
 */
import { runRuntime } from "./command.ts";
import { withCriuOnPath } from "./criu_path.ts";
import type { ContainerInfo, ContainerMount, RuncNode } from "./types.ts";

/** The runc node of u2cm's environment: `runc` on PATH, `$U2CM_RUNC_ROOT` or /run/runc. */
export function defaultRuncNode(): RuncNode {
  return { bin: "runc", root: Deno.env.get("U2CM_RUNC_ROOT") || "/run/runc", env: {} };
}

/** Run runc with the node's `--root`; resolves with stdout. */
export function runc(
  node: RuncNode,
  args: string[],
  options: { signal?: AbortSignal; timeoutMs?: number } = {},
): Promise<string> {
  return runRuntime(node.bin, ["--root", node.root, ...args], {
    ...options,
    env: withCriuOnPath(node.env),
  });
}

/** A container as `runc list` reports it. */
interface RuncState {
  id: string;
  pid: number;
  status: string;
  bundle: string;
}

/** The containers in the node's state directory. */
export async function listRuncContainers(
  node: RuncNode,
  options: { signal?: AbortSignal } = {},
): Promise<RuncState[]> {
  try {
    await Deno.stat(node.root);
  } catch {
    return [];
  }
  const out = (await runc(node, ["list", "--format", "json"], options)).trim();
  const list = JSON.parse(out === "" || out === "null" ? "[]" : out) as RuncState[];
  return list.map((c) => ({
    id: String(c.id),
    pid: Number(c.pid),
    status: String(c.status),
    bundle: String(c.bundle),
  }));
}

/** runc container `id` as a {@linkcode ContainerInfo}, or undefined when runc has none. */
export async function inspectRuncContainer(
  node: RuncNode,
  id: string,
  options: { signal?: AbortSignal } = {},
): Promise<ContainerInfo | undefined> {
  const found = (await listRuncContainers(node, options)).find((c) => c.id === id);
  if (!found) return undefined;
  let spec: Record<string, unknown> = {};
  try {
    spec = JSON.parse(await Deno.readTextFile(`${found.bundle}/config.json`));
  } catch { /* bundle unreadable: reported by the destination check */ }
  const linux = (spec.linux ?? {}) as { namespaces?: { type: string; path?: string }[] };
  const netns = linux.namespaces?.find((n) => n.type === "network");
  const mounts: ContainerMount[] = [];
  for (
    const m of (spec.mounts ?? []) as {
      type?: string;
      source?: string;
      destination?: string;
      options?: string[];
    }[]
  ) {
    if (m.type === "bind" || m.options?.includes("bind") || m.options?.includes("rbind")) {
      mounts.push({ type: "bind", source: String(m.source), destination: String(m.destination) });
    }
  }
  return {
    name: found.id,
    id: found.id,
    runtime: "runc",
    image: found.bundle,
    initPid: found.pid,
    state: found.status,
    networkMode: netns ? (netns.path ? `ns:${netns.path}` : "private") : "host",
    ports: [],
    mounts,
    bundle: found.bundle,
  };
}
