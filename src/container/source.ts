/**
 * The source's side of a container migration, apart from memory: the pre-freeze check it sends,
 * podman's files of the checkpoint as they go on the wire, and the `container` part of the
 * restore request.
 *
 * @example
 * ```ts
 * const check = containerCheckFor(info, { withVolumes: false });
 * const files = await sendPodmanFiles(ck, (name, data) => channel.sendFile(name, data));
 * const request = containerRestoreRequest({ info, roots, files, imageSha256 });
 * ```
 *
 * @module
 */
import type { PodmanCheckpoint } from "./checkpoint.ts";
import type { StoreRoots } from "./import.ts";
import {
  type ContainerCheck,
  type ContainerRestore,
  PODMAN_FILE_PREFIX,
  volumeFile,
} from "./transfer.ts";
import { type ContainerInfo, ContainerStateError } from "./types.ts";

/** The check the destination answers before anything is frozen. */
export function containerCheckFor(
  info: ContainerInfo,
  options: { withVolumes?: boolean } = {},
): ContainerCheck {
  return {
    runtime: info.runtime,
    id: info.id,
    name: info.name,
    ...(info.imageId ? { imageId: info.imageId } : {}),
    mounts: info.mounts,
    withVolumes: options.withVolumes ?? false,
    ...(info.bundle ? { bundle: info.bundle } : {}),
  };
}

/** Largest podman file sent (the rootfs diff and /dev/shm archive can be big: 4 GiB). */
const MAX_PODMAN_FILE = 4 * 2 ** 30;

/**
 * Send podman's files of checkpoint `ck` (config.dump, spec.dump, network.status, rootfs-diff.tar,
 * devshm-checkpoint.tar, ctr.log, …) as `podman.<name>`, and its volume exports as
 * `volume.<name>.tar`; resolves with the podman file names sent.
 */
export async function sendPodmanFiles(
  ck: PodmanCheckpoint,
  send: (name: string, data: Uint8Array) => Promise<void>,
): Promise<string[]> {
  const sent: string[] = [];
  for (const name of ck.files) {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$/.test(name)) continue;
    const path = `${ck.dir}/${name}`;
    if ((await Deno.stat(path)).size > MAX_PODMAN_FILE) {
      throw new ContainerStateError(`${name} of the checkpoint is larger than 4 GiB`);
    }
    await send(`${PODMAN_FILE_PREFIX}${name}`, await Deno.readFile(path));
    sent.push(name);
  }
  for (const v of ck.volumes) {
    await send(volumeFile(v), await Deno.readFile(`${ck.dir}/volumes/${v}.tar`));
  }
  return sent;
}

/** What {@linkcode containerRestoreRequest} needs. */
export interface ContainerRequestParts {
  /** The container. */
  info: ContainerInfo;
  /** The source's storage roots. */
  roots: StoreRoots;
  /** podman's files sent. */
  files: string[];
  /** Image names to tag with at the destination. @default [info.image] */
  imageNames?: string[];
  /** sha256 of the image archive, when it was sent. */
  imageSha256?: string;
  /** Named volumes sent. @default [] */
  volumes?: string[];
}

/** The `container` field of the restore request. */
export function containerRestoreRequest(parts: ContainerRequestParts): ContainerRestore {
  const { info, roots, files, imageSha256, volumes = [] } = parts;
  if (info.runtime !== "podman" || !info.imageId) {
    throw new ContainerStateError(`only podman containers carry an image (${info.runtime})`);
  }
  return {
    runtime: "podman",
    id: info.id,
    name: info.name,
    image: {
      id: info.imageId,
      names: parts.imageNames ?? (info.image ? [info.image] : []),
      ...(imageSha256 ? { sha256: imageSha256 } : {}),
    },
    sourceRoots: { graphRoot: roots.graphRoot, runRoot: roots.runRoot },
    volumes,
    files,
  };
}
