/**
 * What u2cm knows about a container it migrates: the shape shared by the runtime layer, the CLI
 * and the migration result (`container: {name, id, runtime, image}`).
 *
 * @module
 */

/** The container runtimes u2cm migrates from and to. */
export type ContainerRuntime = "podman" | "runc";

/** `--runtime`: a runtime, or `auto` (podman first, then runc). */
export type RuntimeChoice = ContainerRuntime | "auto";

/** How a podman node's commands run: the binary and the environment added to u2cm's own. */
export interface PodmanNode {
  /** The podman executable. @default "podman" */
  bin: string;
  /** Extra environment (CONTAINERS_STORAGE_CONF, CONTAINERS_CONF, PATH, TMPDIR). @default {} */
  env: Record<string, string>;
}

/** How runc's commands run on a node. */
export interface RuncNode {
  /** The runc executable. @default "runc" */
  bin: string;
  /** runc's state directory (`--root`). @default "/run/runc" */
  root: string;
  /** Extra environment. @default {} */
  env: Record<string, string>;
}

/** A mount of a container that must exist on the destination. */
export interface ContainerMount {
  /** `volume` (a named volume) or `bind` (a host path). */
  type: "volume" | "bind";
  /** The volume's name (volumes only). */
  name?: string;
  /** Host path on the source. */
  source: string;
  /** Path inside the container. */
  destination: string;
}

/** A resolved container. */
export interface ContainerInfo {
  /** Its name. */
  name: string;
  /** Its full ID (64 hex digits for podman; runc's own ID otherwise). */
  id: string;
  /** The runtime that runs it. */
  runtime: ContainerRuntime;
  /** Its image: the name it was created from, or the bundle path for runc. */
  image: string;
  /** The image ID (sha256 hex, podman only). */
  imageId?: string;
  /** Host pid of its init process. */
  initPid: number;
  /** Runtime state (running, paused, exited, …). */
  state: string;
  /** Network mode (none, host, bridge, slirp4netns, …; "runc" bundles: from the spec). */
  networkMode: string;
  /** Published ports, as "hostPort/proto" strings. */
  ports: string[];
  /** Named volumes and bind mounts. */
  mounts: ContainerMount[];
  /** runc only: the OCI bundle directory. */
  bundle?: string;
}

/** The part of {@linkcode ContainerInfo} the migration result carries. */
export interface ContainerSummary {
  /** Container name. */
  name: string;
  /** Container ID. */
  id: string;
  /** Runtime. */
  runtime: ContainerRuntime;
  /** Image name (or bundle for runc). */
  image: string;
}

/** The result's `container` field for `info`. */
export function containerSummary(info: ContainerInfo): ContainerSummary {
  return { name: info.name, id: info.id, runtime: info.runtime, image: info.image };
}

/** Raised when no runtime knows the container. */
export class ContainerNotFoundError extends Error {
  constructor(readonly ref: string, readonly tried: ContainerRuntime[]) {
    super(`no container '${ref}' found (looked in: ${tried.join(", ")})`);
    this.name = "ContainerNotFoundError";
  }
}

/** Raised when the container cannot be migrated as it is (stopped, unsupported mode, …). */
export class ContainerStateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ContainerStateError";
  }
}
