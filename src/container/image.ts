/**
 * A container's image between two podman nodes: which image a container runs (ID and digest),
 * whether a node has it, and `podman save`/`podman load` of that exact image ID with its digest
 * checked on arrival. The archive's bytes travel as a migration file over the authenticated
 * peer channel (src/peer); this module only produces and consumes the file.
 *
 * @example
 * ```ts
 * const img = await imageInfo(source, "f41d343887e9");
 * if (img && !(await imageInfo(dest, img.id))) {
 *   const sha = await saveImage(source, img.id, "/dev/shm/m1/image.tar");
 *   await loadImage(dest, { path: "/dev/shm/m1/image.tar", id: img.id, sha256: sha, names: img.names });
 * }
 * ```
 *
 * @module
 */
import { createHash } from "node:crypto";
import { podman } from "./podman.ts";
import type { PodmanNode } from "./types.ts";

/** An image as a node stores it. */
export interface ImageInfo {
  /** Image ID: the sha256 of its config, 64 hex digits. */
  id: string;
  /** Manifest digest (`sha256:…`). */
  digest: string;
  /** Its names (repo:tag). */
  names: string[];
  /** Size in bytes. */
  size: number;
}

/** Raised when an image archive does not hold the image it claims to. */
export class ImageDigestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ImageDigestError";
  }
}

/** Image IDs: 64 lowercase hex digits (a `sha256:` prefix is accepted and dropped). */
export function normalizeImageId(id: string): string {
  const hex = id.replace(/^sha256:/, "");
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new ImageDigestError(`'${id}' is not an image ID`);
  return hex;
}

/** The image `ref` (name or ID) on `node`, or undefined when it has none. */
export async function imageInfo(
  node: PodmanNode,
  ref: string,
  options: { signal?: AbortSignal } = {},
): Promise<ImageInfo | undefined> {
  let out: string;
  try {
    out = await podman(node, ["image", "inspect", ref], options);
  } catch (e) {
    if (/image not known|no such (image|object)|failed to find image/i.test(String(e))) {
      return undefined;
    }
    throw e;
  }
  const img = JSON.parse(out)[0];
  if (!img) return undefined;
  return {
    id: String(img.Id),
    digest: String(img.Digest ?? ""),
    names: (img.RepoTags ?? []).map(String),
    size: Number(img.Size ?? 0),
  };
}

/**
 * `podman save` the image with ID `id` to `path` (docker-archive, tags left out: the destination
 * tags by name after checking the ID). Resolves with the archive's sha256 (hex).
 */
export async function saveImage(
  node: PodmanNode,
  id: string,
  path: string,
  options: { signal?: AbortSignal } = {},
): Promise<string> {
  const hex = normalizeImageId(id);
  await podman(node, ["save", "--quiet", "--format", "docker-archive", "-o", path, hex], options);
  return await sha256File(path);
}

/** What {@linkcode loadImage} loads and checks. */
export interface LoadImageOptions {
  /** The archive. */
  path: string;
  /** The image ID it must yield. */
  id: string;
  /** The archive's sha256 as the source computed it. */
  sha256: string;
  /** Names to tag the image with (the container was created from one of them). @default [] */
  names?: string[];
  /** Cancels the load. */
  signal?: AbortSignal;
}

/**
 * Check the archive's sha256, `podman load` it, check that the node now has image `id`, and tag
 * it with `names`. Throws {@linkcode ImageDigestError} on any mismatch; an image this call
 * loaded under another ID is removed again.
 */
export async function loadImage(node: PodmanNode, options: LoadImageOptions): Promise<ImageInfo> {
  const { path, names = [], signal } = options;
  const id = normalizeImageId(options.id);
  const got = await sha256File(path);
  if (got !== options.sha256) {
    throw new ImageDigestError(`image archive sha256 ${got} is not the source's ${options.sha256}`);
  }
  const out = await podman(node, ["load", "--quiet", "-i", path], { signal });
  const loaded = /sha256:([0-9a-f]{64})/.exec(out)?.[1];
  if (loaded !== id) {
    if (loaded) await podman(node, ["rmi", "--force", loaded]).catch(() => {});
    throw new ImageDigestError(`image archive held image ${loaded ?? "(none)"}, expected ${id}`);
  }
  for (const name of names) await podman(node, ["tag", id, name], { signal });
  const info = await imageInfo(node, id, { signal });
  if (!info || info.id !== id) throw new ImageDigestError(`image ${id} missing after load`);
  return info;
}

/** Remove image `id` from `node` (used when a migration that loaded it is rolled back). */
export async function removeImage(node: PodmanNode, id: string): Promise<void> {
  await podman(node, ["rmi", "--force", normalizeImageId(id)]);
}

/** sha256 (hex) of a file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  const file = await Deno.open(path);
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}
