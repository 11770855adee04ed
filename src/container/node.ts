/**
 * The podman and runc nodes of this u2cm process: its own environment (so `CONTAINERS_STORAGE_CONF`
 * and `CONTAINERS_CONF` set for `u2cm migrate` or `u2cm agent` reach podman unchanged), with the
 * configuration file's `containers` keys — for the systemd service — filled in where the
 * environment leaves them unset.
 *
 * @example
 * ```ts
 * const { podman, runc } = runtimeNodes({ CONTAINERS_CONF: "/etc/u2cm/containers.conf" });
 * console.log(podman.env, runc.root);
 * ```
 *
 * @module
 */
import type { PodmanNode, RuncNode } from "./types.ts";
import { defaultRuncNode } from "./runc.ts";

/** The `containers` keys of the configuration file (see src/ops/config.ts). */
export interface ContainerKeys {
  /** podman's storage.conf. */
  CONTAINERS_STORAGE_CONF?: string;
  /** podman's containers.conf. */
  CONTAINERS_CONF?: string;
  /** podman binary. */
  podman?: string;
  /** runc state dir. */
  runcRoot?: string;
  /** Cgroup parent for containers restored here. */
  cgroupParent?: string;
}

/** The nodes, plus the cgroup parent restored containers get (undefined: the source's). */
export interface RuntimeNodes {
  /** podman. */
  podman: PodmanNode;
  /** runc. */
  runc: RuncNode;
  /** Cgroup parent for containers restored here. */
  cgroupParent?: string;
}

/** Build this process's runtime nodes from its environment and the config's `containers` keys. */
export function runtimeNodes(keys: ContainerKeys = {}): RuntimeNodes {
  const env: Record<string, string> = {};
  for (const k of ["CONTAINERS_STORAGE_CONF", "CONTAINERS_CONF"] as const) {
    if (!Deno.env.get(k) && keys[k]) env[k] = keys[k]!;
  }
  const runc = defaultRuncNode();
  return {
    podman: { bin: keys.podman ?? "podman", env },
    runc: keys.runcRoot && !Deno.env.get("U2CM_RUNC_ROOT")
      ? { ...runc, root: keys.runcRoot }
      : runc,
    cgroupParent: Deno.env.get("U2CM_CGROUP_PARENT") || keys.cgroupParent,
  };
}
