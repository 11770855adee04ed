/**
 * The container pre-check on the wire: before freezing a container, the source asks the
 * destination's agent whether it can take it (runtime working, image present, name free, every
 * named volume and bind-mount source there). Control messages `containerCheck` →
 * `containerChecked`, validated here like every other message (protocol.ts embeds these schemas).
 *
 * @module
 */
import { z } from "zod";

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;
const Name = z.string().regex(NAME_RE);
const Hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const HostPath = z.string().min(1).max(4096).refine(
  (p) => p.startsWith("/") && !p.split("/").includes(".."),
  "an absolute path without '..'",
);

/** A mount the destination must provide. */
export const MountSchema = z.object({
  type: z.enum(["volume", "bind"]),
  name: Name.optional(),
  source: HostPath,
  destination: HostPath,
}).strict();

/** What the source asks the destination before freezing anything. */
export const ContainerCheckSchema = z.object({
  runtime: z.enum(["podman", "runc"]),
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/),
  name: Name,
  imageId: Hex64.optional(),
  mounts: z.array(MountSchema).max(128),
  withVolumes: z.boolean(),
  /** runc: the bundle that must exist at the destination. */
  bundle: HostPath.optional(),
}).strict();

/** A validated check. */
export type ContainerCheck = z.infer<typeof ContainerCheckSchema>;

/** The destination's answer. */
export const ContainerCheckAnswerSchema = z.object({
  /** The runtime works here (and reaches a CRIU that can restore). */
  runtimeOk: z.boolean(),
  /** The image is already here (nothing to send). */
  imagePresent: z.boolean(),
  /** Everything that stops the migration, one line each (empty: go ahead). */
  problems: z.array(z.string().max(1024)).max(64),
}).strict();

/** A validated answer. */
export type ContainerCheckAnswer = z.infer<typeof ContainerCheckAnswerSchema>;

/** The engine's hook that answers a container check on the agent. */
export type ContainerCheckHandler = (
  check: ContainerCheck,
  owner: string,
) => Promise<ContainerCheckAnswer>;
