/**
 * The final phase of a runc container migration (a container runc runs directly from an OCI
 * bundle), as a part of the one migration driver: after u2cm's pre-copy rounds over the
 * container's processes, `runc checkpoint` freezes and dumps it (runc then ends it and forgets
 * it), only the pages the destination lacks are sent with the page manifest, then CRIU's other
 * images and — when the destination has no bundle at the bundle's path — the bundle itself
 * (config.json and rootfs, archived after the checkpoint, when the rootfs no longer changes).
 * The destination restores it left stopped (src/container/runc_destination.ts).
 *
 * Until the commit the source owns the container: any failure inside the phase, and `stop()` on
 * the driver's rollback, tells the destination to discard its copy and restores the container
 * here with `runc restore` from the checkpoint (same ID, same memory, the original bundle). Its
 * stdout and stderr then go to `logFile` (runc hands the restoring process's stdio to the
 * container; the pipes it had died with it).
 *
 * @example
 * ```ts
 * const phase = runcFinalPhase({ info, node, sendBundle: true, logFile: "/var/lib/u2cm/c.log" });
 * ```
 *
 * @module
 */
import { tcpRestoreRequest } from "../engine/dump_pages.ts";
import type { FinalContext, FinalPhase, FrozenTree } from "../engine/parts.ts";
import { sendDumpVerified } from "../engine/send_dump.ts";
import type { PhaseTimes } from "../engine/types.ts";
import { runRuntime } from "./command.ts";
import { sha256File } from "./image.ts";
import { checkpointRunc, restoreRunc } from "./runc_checkpoint.ts";
import { BUNDLE_FILE, type RuncRestore } from "./transfer.ts";
import { type ContainerInfo, ContainerStateError, type RuncNode } from "./types.ts";

/** Largest bundle archive sent (it travels inside the downtime: keep big rootfs at the peer). */
const MAX_BUNDLE_BYTES = 2 * 2 ** 30;

/** Options of {@linkcode runcFinalPhase}. */
export interface RuncFinalOptions {
  /** The container (resolved on the source; `bundle` set). */
  info: ContainerInfo;
  /** The source's runc. */
  node: RuncNode;
  /** Send the bundle (the destination has none at its path). @default false */
  sendBundle?: boolean;
  /** Where a container restored here by a rollback writes its stdout and stderr. */
  logFile: string;
}

/** The runc container final phase for the driver. */
export function runcFinalPhase(options: RuncFinalOptions): FinalPhase {
  return { name: "stop-and-copy", freeze: (ctx) => freezeRunc(ctx, options) };
}

/** The checkpoint's images directory inside the final phase's directory. */
export function runcImagesDir(finalDir: string): string {
  return `${finalDir}/checkpoint`;
}

async function freezeRunc(ctx: FinalContext, o: RuncFinalOptions): Promise<FrozenTree> {
  const { channel, dir } = ctx;
  const bundle = o.info.bundle;
  if (!bundle) throw new ContainerStateError(`runc container '${o.info.id}' names no bundle`);
  const phases: PhaseTimes = { freeze_ms: 0, dump_ms: 0, transfer_ms: 0, restore_ms: 0 };
  const tcp = ctx.tcp !== undefined;
  let images: string | undefined;
  let restored = false;
  const rollback = async (why: string) => {
    if (restored || !images) return;
    restored = true;
    await channel.abort(`source rolls back: ${why}`).catch(() => false);
    try {
      await restoreRunc(o.node, {
        id: o.info.id,
        imagesDir: images,
        bundle,
        workDir: `${dir}/rollback`,
        leaveStopped: false,
        tcpEstablished: tcp,
        logFile: o.logFile,
      });
    } catch (e) {
      console.error(
        `u2cm: could not restore runc container '${o.info.id}' on this node after the rollback: ` +
          `${(e as Error).message}; its checkpoint is in ${images} until u2cm recover runs`,
      );
      throw e;
    }
  };
  ctx.onProgress?.({ kind: "phase", phase: "dump" });
  try {
    const t0 = performance.now();
    images = await checkpointRunc(o.node, {
      id: o.info.id,
      workDir: dir,
      tcpEstablished: tcp,
      signal: ctx.signal,
    });
    phases.dump_ms = performance.now() - t0;
    phases.freeze_ms = phases.dump_ms;
    ctx.onProgress?.({ kind: "phase", phase: "transfer" });
    const transferAt = performance.now();
    const sent = await sendDumpVerified({
      channel,
      dir: images,
      ledger: ctx.ledger,
      verify: ctx.verify,
    });
    let bundleSha256: string | undefined;
    if (o.sendBundle) bundleSha256 = await sendBundle(ctx, bundle);
    await channel.flush();
    phases.transfer_ms = performance.now() - transferAt;
    const container: RuncRestore = {
      runtime: "runc",
      id: o.info.id,
      bundle,
      ...(bundleSha256 ? { bundleSha256 } : {}),
    };
    return {
      request: { engine: "delta", ...sent.request, ...tcpRestoreRequest(ctx.tcp), container },
      pages: sent.pages,
      phases,
      dumpDir: images,
      // runc ended and forgot the container at the checkpoint: nothing is left to remove
      drain: () => Promise.resolve(),
      stop: () => rollback("the migration rolled back"),
    };
  } catch (e) {
    await rollback((e as Error).message).catch((re) => {
      (e as Error).message += `; restoring the container here failed too: ${(re as Error).message}`;
    });
    throw e;
  }
}

/** Archive the bundle (the container is stopped: its rootfs is consistent) and send it. */
async function sendBundle(ctx: FinalContext, bundle: string): Promise<string> {
  const file = `${ctx.dir}/bundle.tar`;
  await runRuntime("tar", ["-C", bundle, "--numeric-owner", "-cf", file, "."], {
    signal: ctx.signal,
  });
  try {
    const size = (await Deno.stat(file)).size;
    if (size > MAX_BUNDLE_BYTES) {
      throw new ContainerStateError(
        `bundle ${bundle} is ${size} bytes archived: put it on the destination instead`,
      );
    }
    const sha = await sha256File(file);
    await ctx.channel.sendFile(BUNDLE_FILE, await Deno.readFile(file));
    return sha;
  } finally {
    await Deno.remove(file).catch(() => {});
  }
}
