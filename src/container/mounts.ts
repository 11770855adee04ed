/**
 * A container's volumes and bind mounts across a migration: the destination checks, before the
 * source freezes anything, that every named volume and every bind-mount source exists (or, with
 * `--with-volumes`, that it may create the named volumes); named volumes are copied with
 * `podman volume export`/`import` while the container is checkpointed (their contents are
 * consistent only once it is stopped).
 *
 * @example
 * ```ts
 * const missing = await missingMounts(dest, info.mounts, { withVolumes: false });
 * if (missing.length) throw new Error(describeMissing(missing));
 * ```
 *
 * @module
 */
import { podman } from "./podman.ts";
import type { ContainerMount, PodmanNode } from "./types.ts";

/** A mount the destination lacks. */
export interface MissingMount {
  /** The mount. */
  mount: ContainerMount;
  /** Why it does not do. */
  reason: string;
}

/** Options of {@linkcode missingMounts}. */
export interface MissingMountsOptions {
  /** Named volumes will be copied (so they must NOT exist yet). @default false */
  withVolumes?: boolean;
  /** Cancels the checks. */
  signal?: AbortSignal;
}

/** The mounts of a container that the destination `node` cannot provide. */
export async function missingMounts(
  node: PodmanNode | undefined,
  mounts: ContainerMount[],
  options: MissingMountsOptions = {},
): Promise<MissingMount[]> {
  const { withVolumes = false, signal } = options;
  const out: MissingMount[] = [];
  for (const mount of mounts) {
    if (mount.type === "bind") {
      try {
        await Deno.stat(mount.source);
      } catch {
        out.push({ mount, reason: `bind-mount source ${mount.source} does not exist here` });
      }
      continue;
    }
    if (!node) {
      out.push({ mount, reason: `named volume ${mount.name} needs podman here` });
      continue;
    }
    const exists = await volumeExists(node, mount.name ?? "", signal);
    if (withVolumes && exists) {
      out.push({ mount, reason: `volume ${mount.name} already exists here (not overwritten)` });
    } else if (!withVolumes && !exists) {
      out.push({
        mount,
        reason:
          `named volume ${mount.name} does not exist here (create it, or pass --with-volumes)`,
      });
    }
  }
  return out;
}

/** One line per missing mount, for an error message. */
export function describeMissing(missing: MissingMount[]): string {
  return missing.map((m) => `${m.mount.destination}: ${m.reason}`).join("; ");
}

/** Whether `node` has the named volume. */
export async function volumeExists(
  node: PodmanNode,
  name: string,
  signal?: AbortSignal,
): Promise<boolean> {
  try {
    await podman(node, ["volume", "exists", name], { signal });
    return true;
  } catch {
    return false;
  }
}

/** Remove volume `name` (a volume this migration created, on rollback). */
export async function removeVolume(node: PodmanNode, name: string): Promise<void> {
  await podman(node, ["volume", "rm", "--force", name]);
}
