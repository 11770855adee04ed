/**
 * `--container NAME|ID` with `--runtime auto|podman|runc` → the container, its runtime, image and
 * init's host pid. `auto` asks podman first (when installed), then runc.
 *
 * @example
 * ```ts
 * const c = await resolveContainer({ ref: "web", runtime: "auto" });
 * console.log(c.runtime, c.id, c.initPid);
 * ```
 *
 * @module
 */
import { defaultPodmanNode, inspectPodmanContainer, listPodmanContainers } from "./podman.ts";
import { defaultRuncNode, inspectRuncContainer, listRuncContainers } from "./runc.ts";
import { RuntimeCommandError } from "./command.ts";
import {
  type ContainerInfo,
  ContainerNotFoundError,
  type ContainerRuntime,
  ContainerStateError,
  type PodmanNode,
  type RuncNode,
  type RuntimeChoice,
} from "./types.ts";

/** Options of {@linkcode resolveContainer}. */
export interface ResolveOptions {
  /** Name or ID (a unique ID prefix works for podman). */
  ref: string;
  /** Which runtime to ask. @default "auto" */
  runtime?: RuntimeChoice;
  /** The podman node. @default defaultPodmanNode() */
  podman?: PodmanNode;
  /** The runc node. @default defaultRuncNode() */
  runc?: RuncNode;
  /** Require it to be running. @default true */
  requireRunning?: boolean;
  /** Cancels the lookup. */
  signal?: AbortSignal;
}

/**
 * Find the container; throws {@linkcode ContainerNotFoundError} when no runtime asked knows it and
 * {@linkcode ContainerStateError} when it is not running (with `requireRunning`).
 */
export async function resolveContainer(options: ResolveOptions): Promise<ContainerInfo> {
  const { ref, runtime = "auto", requireRunning = true, signal } = options;
  const order: ContainerRuntime[] = runtime === "auto" ? ["podman", "runc"] : [runtime];
  const tried: ContainerRuntime[] = [];
  for (const rt of order) {
    let found: ContainerInfo | undefined;
    try {
      found = rt === "podman"
        ? await inspectPodmanContainer(options.podman ?? defaultPodmanNode(), ref, { signal })
        : await inspectRuncContainer(options.runc ?? defaultRuncNode(), ref, { signal });
    } catch (e) {
      // with auto, a runtime that is not installed is skipped
      if (runtime === "auto" && e instanceof RuntimeCommandError && e.exitCode === -1) continue;
      throw e;
    } finally {
      tried.push(rt);
    }
    if (!found) continue;
    if (requireRunning && (found.state !== "running" || !(found.initPid > 0))) {
      throw new ContainerStateError(
        `container '${found.name}' (${rt}) is ${found.state}, not running: nothing to migrate`,
      );
    }
    return found;
  }
  throw new ContainerNotFoundError(ref, tried);
}

/** A running container as the interactive prompt lists it. */
export interface ListedContainer {
  /** Runtime. */
  runtime: ContainerRuntime;
  /** Name. */
  name: string;
  /** ID. */
  id: string;
  /** Image (or bundle). */
  image: string;
  /** Init's host pid. */
  pid: number;
}

/** Every running container podman and runc know (a runtime that is missing is skipped). */
export async function listRunningContainers(
  options: { podman?: PodmanNode; runc?: RuncNode; signal?: AbortSignal } = {},
): Promise<ListedContainer[]> {
  const out: ListedContainer[] = [];
  try {
    for (const c of await listPodmanContainers(options.podman ?? defaultPodmanNode(), options)) {
      if (c.state === "running") {
        out.push({ runtime: "podman", name: c.name, id: c.id, image: c.image, pid: c.pid });
      }
    }
  } catch { /* podman missing or failing: list what runc has */ }
  try {
    const podmanIds = new Set(out.map((c) => c.id));
    for (const c of await listRuncContainers(options.runc ?? defaultRuncNode(), options)) {
      // podman's own runc containers show up in runc's default root too
      if (c.status === "running" && !podmanIds.has(c.id)) {
        out.push({ runtime: "runc", name: c.id, id: c.id, image: c.bundle, pid: c.pid });
      }
    }
  } catch { /* runc missing */ }
  return out;
}
