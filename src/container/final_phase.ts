/**
 * The final phase of a podman container migration, as a part of the one migration driver
 * (src/engine/driver.ts): after u2cm's own pre-copy rounds over the container's processes,
 * `podman container checkpoint --export --compress none` freezes and dumps it (podman's view:
 * exited, checkpointed), only the pages whose hash differs from what the destination already holds
 * are sent, then CRIU's other images, the page manifest (every page's hash: the destination
 * checks its images and reads the restored container back against it), podman's files and —
 * with `--with-volumes` — the volume exports. The restore request carries the container's identity, image and the source's storage
 * roots; the destination restores it left stopped (src/container/destination.ts).
 *
 * Until the commit the source owns the container: any failure inside the phase, and `stop()` on
 * the driver's rollback, first tells the destination to discard its copy, then restores the
 * container here from the checkpoint podman keeps (same name, same ID, same memory). After the
 * commit, `drain()` removes the source's checkpointed container, so `podman ps -a` no longer
 * lists it here.
 *
 * @example
 * ```ts
 * const outcome = await runMigration({ ...ctx, finalPhase: podmanFinalPhase({ info, node, request }) }, plan);
 * ```
 *
 * @module
 */
import { tcpRestoreRequest } from "../engine/dump_pages.ts";
import { sendDumpVerified, type SentDump } from "../engine/send_dump.ts";
import type { FinalContext, FinalPhase, FrozenTree } from "../engine/parts.ts";
import type { PhaseTimes, RestoreRequestBase } from "../engine/types.ts";
import { checkpointPodman, type PodmanCheckpoint, restoreLocally } from "./checkpoint.ts";
import { removeContainer } from "./import.ts";
import { podman, podmanStore } from "./podman.ts";
import type { StoreRoots } from "./import.ts";
import { containerRestoreRequest, sendPodmanFiles } from "./source.ts";
import type { ContainerInfo, PodmanNode } from "./types.ts";

/** Options of {@linkcode podmanFinalPhase}. */
export interface PodmanFinalOptions {
  /** The container (resolved on the source). */
  info: ContainerInfo;
  /** The source's podman. */
  node: PodmanNode;
  /** sha256 of the image archive sent before the rounds, when the destination lacked the image. */
  imageSha256?: string;
  /** Copy the named volumes. @default false */
  withVolumes?: boolean;
  /** Remove the source's container after the commit. @default true */
  removeSource?: boolean;
  /** The source's storage roots, asked for before the freeze. @default asked for when freezing */
  roots?: StoreRoots;
  /** The container's userdata directory, asked for before the freeze. */
  userdata?: string;
}

/**
 * What the final phase needs from podman that does not change while the container runs: asked
 * before the pre-copy rounds, so no podman round trip lands inside the downtime.
 */
export async function podmanFinalFacts(
  node: PodmanNode,
  id: string,
): Promise<{ roots: StoreRoots; userdata: string; criuConfig?: string }> {
  const roots = await podmanStore(node);
  const userdata = (await podman(node, ["inspect", "--format", "{{.StaticDir}}", id])).trim();
  // runc hands CRIU this annotation's file instead of /etc/criu/runc.conf (the lazy freeze's way)
  let criuConfig: string | undefined;
  try {
    const spec = JSON.parse(await Deno.readTextFile(`${userdata}/config.json`));
    const v = spec.annotations?.["org.criu.config"];
    if (typeof v === "string") criuConfig = v;
  } catch { /* no spec to read: assume none */ }
  return { roots, userdata, ...(criuConfig !== undefined ? { criuConfig } : {}) };
}

/** The podman container final phase for the driver. */
export function podmanFinalPhase(options: PodmanFinalOptions): FinalPhase {
  return { name: "stop-and-copy", freeze: (ctx) => freezeContainer(ctx, options) };
}

async function freezeContainer(ctx: FinalContext, o: PodmanFinalOptions): Promise<FrozenTree> {
  const { channel, dir } = ctx;
  const phases: PhaseTimes = { freeze_ms: 0, dump_ms: 0, transfer_ms: 0, restore_ms: 0 };
  const roots = o.roots ?? await podmanStore(o.node, { signal: ctx.signal });
  ctx.onProgress?.({ kind: "phase", phase: "dump" });
  // --tcp close needs the connections dumped too: podman cannot leave them out
  const tcp = ctx.tcp !== undefined;
  let ck: PodmanCheckpoint | undefined;
  let restored = false;
  const rollback = async (why: string) => {
    if (restored || !ck) return;
    restored = true;
    await channel.abort(`source rolls back: ${why}`).catch(() => false);
    try {
      await restoreLocally(o.node, { id: o.info.id, tcpEstablished: tcp });
    } catch (e) {
      // the driver's rollback cannot report this: say it here, loudly
      console.error(
        `u2cm: could not restore container '${o.info.name}' on this node after the rollback: ` +
          `${(e as Error).message}; it is checkpointed: 'podman container restore ${o.info.id}'`,
      );
      throw e;
    }
  };
  try {
    const t0 = performance.now();
    ck = await checkpointPodman(o.node, {
      id: o.info.id,
      workDir: dir,
      tcpEstablished: tcp,
      withVolumes: o.withVolumes,
      userdata: o.userdata,
      signal: ctx.signal,
    });
    phases.dump_ms = performance.now() - t0;
    phases.freeze_ms = ck.frozenMs ?? ck.checkpointMs;
    ctx.onProgress?.({ kind: "phase", phase: "transfer" });
    const transferAt = performance.now();
    // every page hashed into the manifest; only what the destination lacks is sent
    const sent = await sendDumpVerified({
      channel,
      dir: ck.imagesDir,
      ledger: ctx.ledger,
      verify: ctx.verify,
    });
    const files = await sendPodmanFiles(ck, (name, data) => channel.sendFile(name, data));
    await channel.flush();
    phases.transfer_ms = performance.now() - transferAt;
    return {
      request: podmanRestoreRequest({ o, roots, ck, files, sent, tcp: ctx.tcp }),
      pages: sent.pages,
      phases,
      dumpDir: ck.imagesDir,
      drain: () => removeSourceAfterCommit(o),
      stop: () => rollback("the migration rolled back"),
    };
  } catch (e) {
    // checkpointed but not handed over: the container runs here again before the driver's rollback
    await rollback((e as Error).message).catch((re) => {
      (e as Error).message += `; restoring the container here failed too: ${(re as Error).message}`;
    });
    throw e;
  }
}

/** What {@linkcode podmanRestoreRequest} is made of. */
export interface PodmanRequestParts {
  /** The final phase's options. */
  o: PodmanFinalOptions;
  /** The source's storage roots. */
  roots: StoreRoots;
  /** The checkpoint. */
  ck: PodmanCheckpoint;
  /** podman's files sent. */
  files: string[];
  /** What the dump's sending returned (its request fields). */
  sent: Pick<SentDump, "request">;
  /** The TCP mode. */
  tcp?: "close" | "established";
}

/** The restore request of a podman checkpoint sent to the destination. */
export function podmanRestoreRequest(parts: PodmanRequestParts): RestoreRequestBase {
  const { o, roots, ck, files, sent, tcp } = parts;
  const container = containerRestoreRequest({
    info: o.info,
    roots,
    files,
    imageSha256: o.imageSha256,
    volumes: ck.volumes,
  });
  return { engine: "delta", ...sent.request, ...tcpRestoreRequest(tcp), container };
}

/** After the commit: remove the source's container (unless told to keep it). */
export async function removeSourceAfterCommit(o: PodmanFinalOptions): Promise<void> {
  if (o.removeSource ?? true) await removeContainer(o.node, o.info.id);
}
