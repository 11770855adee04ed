/**
 * `u2cm migrate --container NAME|ID [--runtime auto|podman|runc] [--with-volumes]`: what a
 * container target adds to a migration — resolving the container (its init's host pid is the
 * tree the driver pre-copies), asking the destination before anything is frozen (image present?
 * name free? volumes and bind mounts there?), sending the exact image when the destination lacks
 * it (digest checked there), and the container's own final phase (podman checkpoint/restore).
 *
 * @module
 */
import { podmanFinalFacts, podmanFinalPhase } from "../container/final_phase.ts";
import type { StoreRoots } from "../container/import.ts";
import { imageInfo, saveImage } from "../container/image.ts";
import { runtimeNodes } from "../container/node.ts";
import { resolveContainer } from "../container/resolve.ts";
import { containerCheckFor } from "../container/source.ts";
import { IMAGE_FILE } from "../container/transfer.ts";
import {
  type ContainerInfo,
  ContainerNotFoundError,
  ContainerStateError,
  type RuntimeChoice,
} from "../container/types.ts";
import { RuntimeCommandError } from "../container/command.ts";
import type { ContainersConfig } from "../ops/config.ts";
import type { MigrationChannel } from "../engine/channel.ts";
import type { FinalPhase } from "../engine/parts.ts";
import type { ContainerJournal } from "../engine/journal.ts";
import type { PeerClient } from "../peer/client.ts";
import { CliError, ExitCode } from "./errors.ts";

/** `--runtime` choices. */
export const RUNTIME_CHOICES = ["auto", "podman", "runc"] as const;

/** A resolved container target. */
export interface ContainerTarget {
  /** The container. */
  info: ContainerInfo;
  /** Before the rounds: check at the destination, send the image when missing. */
  prepare(
    client: PeerClient,
    channel: MigrationChannel,
    id: string,
    workDir: string,
  ): Promise<void>;
  /** The final phase for the driver (after `prepare`). */
  finalPhase(): FinalPhase;
  /** Whether the image went over the wire. */
  readonly imageSent: boolean;
  /** The image's size (what the destination must make room for when it lacks it). */
  readonly imageBytes?: number;
  /** What the journal keeps for recovery. */
  journal(): ContainerJournal;
}

/** Resolve `--container` into a target; CLI errors for what the user can fix. */
export async function containerTarget(options: {
  ref: string;
  runtime: RuntimeChoice;
  withVolumes: boolean;
  containers?: ContainersConfig;
}): Promise<ContainerTarget> {
  const nodes = runtimeNodes(options.containers);
  let info: ContainerInfo;
  try {
    info = await resolveContainer({
      ref: options.ref,
      runtime: options.runtime,
      podman: nodes.podman,
      runc: nodes.runc,
    });
  } catch (e) {
    if (e instanceof ContainerNotFoundError) throw new CliError(e.message, ExitCode.NoTarget);
    if (e instanceof ContainerStateError) throw new CliError(e.message, ExitCode.NoTarget);
    if (e instanceof RuntimeCommandError) {
      throw new CliError(`the container runtime failed: ${e.message}`, ExitCode.Environment);
    }
    throw e;
  }
  if (info.runtime !== "podman") {
    throw new CliError(
      `container '${info.name}' runs under runc directly: runc bundles checkpoint and restore ` +
        "(src/container/runc_checkpoint.ts) but are not migrated through agents yet; run it " +
        "under podman",
      ExitCode.Environment,
    );
  }
  let imageSha256: string | undefined;
  let facts: { roots: StoreRoots; userdata: string } | undefined;
  const image = await imageInfo(nodes.podman, info.imageId!).catch(() => undefined);
  return {
    info,
    imageBytes: image?.size,
    get imageSent() {
      return imageSha256 !== undefined;
    },
    async prepare(client, channel, id, workDir) {
      facts = await podmanFinalFacts(nodes.podman, info.id);
      const answer = await client.checkContainer(
        id,
        containerCheckFor(info, { withVolumes: options.withVolumes }),
      );
      if (!answer.runtimeOk || answer.problems.length > 0) {
        throw new CliError(
          `the destination cannot take container '${info.name}' (nothing was frozen): ` +
            answer.problems.join("; "),
          ExitCode.MigrationFailed,
        );
      }
      if (answer.imagePresent) return;
      const file = `${await Deno.makeTempDir({ dir: workDir, prefix: `u2cm-image-${id}-` })}/i.tar`;
      try {
        imageSha256 = await saveImage(nodes.podman, info.imageId!, file);
        await channel.sendFile(IMAGE_FILE, await Deno.readFile(file));
        await channel.flush();
      } finally {
        await Deno.remove(file.slice(0, file.lastIndexOf("/")), { recursive: true }).catch(
          () => {},
        );
      }
    },
    journal: () => {
      const env: Record<string, string> = {};
      for (const k of ["CONTAINERS_STORAGE_CONF", "CONTAINERS_CONF", "PATH"]) {
        const v = nodes.podman.env[k] ?? Deno.env.get(k);
        if (v !== undefined) env[k] = v;
      }
      return { runtime: "podman", id: info.id, env };
    },
    // built when the driver freezes: by then `prepare` knows whether the image was sent
    finalPhase: () => ({
      name: "stop-and-copy",
      freeze: (ctx) =>
        podmanFinalPhase({
          info,
          node: nodes.podman,
          imageSha256,
          withVolumes: options.withVolumes,
          ...facts,
        }).freeze(ctx),
    }),
  };
}
