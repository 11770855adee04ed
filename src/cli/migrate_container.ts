/**
 * `u2cm migrate --container NAME|ID [--runtime auto|podman|runc] [--with-volumes]`: what a
 * container target adds to a migration — resolving the container (its init's host pid is the
 * tree the driver pre-copies), asking the destination before anything is frozen (image present?
 * name free? volumes and bind mounts there?), sending the exact image when the destination lacks
 * it (digest checked there), and the container's own final phase (podman's or runc's checkpoint;
 * a runc bundle the destination lacks travels in the freeze).
 *
 * @module
 */
import { podmanFinalFacts, podmanFinalPhase } from "../container/final_phase.ts";
import { podmanLazyFinalPhase } from "../container/lazy_final_phase.ts";
import type { StoreRoots } from "../container/import.ts";
import { imageInfo, saveImage } from "../container/image.ts";
import { type RuntimeNodes, runtimeNodes } from "../container/node.ts";
import { runcFinalPhase } from "../container/runc_final_phase.ts";
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

/** What {@linkcode containerTarget} resolves. */
export interface ContainerTargetOptions {
  /** `--container`. */
  ref: string;
  /** `--runtime`. */
  runtime: RuntimeChoice;
  /** `--with-volumes`. */
  withVolumes: boolean;
  /** The config file's `containers` keys. */
  containers?: ContainersConfig;
  /** The state directory (a rolled-back runc container's log goes below it). */
  stateDir: string;
}

/** Resolve `--container` into a target; CLI errors for what the user can fix. */
export async function containerTarget(options: ContainerTargetOptions): Promise<ContainerTarget> {
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
  if (info.runtime === "runc") return runcTarget(info, nodes, options);
  let imageSha256: string | undefined;
  let facts: { roots: StoreRoots; userdata: string; criuConfig?: string } | undefined;
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
      freeze: (ctx) => {
        const o = { info, node: nodes.podman, imageSha256, withVolumes: options.withVolumes };
        // opt-in: podman's checkpoint as a lazy dump, only changed pages read in the freeze —
        // not for a container whose spec names a CRIU config of its own (runc reads that one)
        const lazy = Deno.env.get("U2CM_CONTAINER_FREEZE") === "lazy" &&
          facts?.criuConfig === undefined;
        const { criuConfig: _, ...known } = facts ?? {};
        return (lazy ? podmanLazyFinalPhase : podmanFinalPhase)({ ...o, ...known }).freeze(ctx);
      },
    }),
  };
}

/**
 * A container runc runs from an OCI bundle: the destination is asked whether it has the bundle
 * at its path (otherwise the bundle travels inside the freeze, once the rootfs is still), and
 * runc's own checkpoint is the final phase.
 */
function runcTarget(
  info: ContainerInfo,
  nodes: RuntimeNodes,
  options: ContainerTargetOptions,
): ContainerTarget {
  if (options.withVolumes) {
    throw new CliError("--with-volumes: runc containers have no named volumes", ExitCode.Usage);
  }
  let sendBundle = false;
  const logFile = `${options.stateDir}/containers/runc-${info.id}.log`;
  return {
    info,
    get imageSent() {
      return sendBundle;
    },
    async prepare(client, _channel, id) {
      const answer = await client.checkContainer(id, containerCheckFor(info));
      if (!answer.runtimeOk || answer.problems.length > 0) {
        throw new CliError(
          `the destination cannot take runc container '${info.id}' (nothing was frozen): ` +
            answer.problems.join("; "),
          ExitCode.MigrationFailed,
        );
      }
      sendBundle = !answer.imagePresent;
      await Deno.mkdir(`${options.stateDir}/containers`, { recursive: true, mode: 0o700 });
    },
    journal: () => ({
      runtime: "runc",
      id: info.id,
      env: pathEnv(nodes.runc.env),
      runc: { bin: nodes.runc.bin, root: nodes.runc.root, bundle: info.bundle!, logFile },
    }),
    finalPhase: () => ({
      name: "stop-and-copy",
      freeze: (ctx) => runcFinalPhase({ info, node: nodes.runc, sendBundle, logFile }).freeze(ctx),
    }),
  };
}

function pathEnv(env: Record<string, string>): Record<string, string> {
  const path = env.PATH ?? Deno.env.get("PATH");
  return path === undefined ? {} : { PATH: path };
}
