/**
 * What a container migration carries besides CRIU's images, and the one definition both sides
 * share of it: how podman's own files are named on the wire, the `container` part of the restore
 * request; the pre-freeze check the source asks the destination (image present? volumes and
 * bind mounts there? name free?) is a peer message (src/peer/container_check.ts), re-exported
 * here. All of it is zod-validated where it arrives.
 *
 * @module
 */
import { z } from "zod";

/** podman's files of a checkpoint export (config.dump, spec.dump, …) travel as `podman.<name>`. */
export const PODMAN_FILE_PREFIX = "podman.";

/** The image archive (`podman save` of the exact image ID) travels as this file. */
export const IMAGE_FILE = "container-image.tar";

/** A runc bundle sent because the destination lacks it (`tar` of the bundle directory). */
export const BUNDLE_FILE = "container-bundle.tar";

/** A named volume's export travels as `volume.<name>.tar`. */
export function volumeFile(name: string): string {
  return `volume.${name}.tar`;
}

/** podman's names of containers and volumes: a letter or digit, then [A-Za-z0-9_.-] (≤ 100). */
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;
const Name = z.string().regex(NAME_RE);
const Hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const HostPath = z.string().min(1).max(4096).refine(
  (p) => p.startsWith("/") && !p.split("/").includes(".."),
  "an absolute path without '..'",
);
/** Image names as podman prints them (registry/repo:tag). */
const ImageName = z.string().max(512).regex(/^[A-Za-z0-9][A-Za-z0-9._/:@-]*$/);

/** The `container` field of a restore request. */
export const ContainerRestoreSchema = z.object({
  runtime: z.literal("podman"),
  /** The container's ID (kept on the destination). */
  id: Hex64,
  /** Its name (kept on the destination). */
  name: Name,
  /** Its image. */
  image: z.object({
    id: Hex64,
    /** Names to tag it with after loading. */
    names: z.array(ImageName).max(32),
    /** sha256 of the image archive, when one was sent ({@linkcode IMAGE_FILE}). */
    sha256: Hex64.optional(),
  }).strict(),
  /** The source's storage roots (the paths config.dump names are moved from). */
  sourceRoots: z.object({ graphRoot: HostPath, runRoot: HostPath }).strict(),
  /** Named volumes sent with the migration ({@linkcode volumeFile}). */
  volumes: z.array(Name).max(64).default([]),
  /** podman's own files sent (without the prefix). */
  files: z.array(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$/)).max(64),
}).strict();

/** A validated container restore request. */
export type ContainerRestore = z.infer<typeof ContainerRestoreSchema>;

/** The `container` field of a restore request for a container runc runs from an OCI bundle. */
export const RuncRestoreSchema = z.object({
  runtime: z.literal("runc"),
  /** runc's container ID (kept on the destination). */
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/),
  /** The bundle's path on the source (used as it is when the destination has it). */
  bundle: HostPath,
  /** sha256 of the bundle archive ({@linkcode BUNDLE_FILE}), when it was sent. */
  bundleSha256: Hex64.optional(),
}).strict();

/** A validated runc restore request. */
export type RuncRestore = z.infer<typeof RuncRestoreSchema>;

/** Which runtime's restore a request asks for, before its own schema checks it. */
export function containerRuntimeOf(container: unknown): "podman" | "runc" | undefined {
  if (typeof container !== "object" || container === null) return undefined;
  const rt = (container as { runtime?: unknown }).runtime;
  return rt === "podman" || rt === "runc" ? rt : undefined;
}

export {
  type ContainerCheck,
  type ContainerCheckAnswer,
  ContainerCheckAnswerSchema,
  ContainerCheckSchema,
  MountSchema,
} from "../peer/container_check.ts";
