/**
 * The `delta` engine: u2cm's own pre-copy, which needs no soft-dirty. Rounds of changed pages
 * (content-hash tracker) go to the destination's page store while the tree runs; then the tree
 * is frozen and dumped by stock CRIU to local tmpfs, and only the pages whose hash differs from
 * what the destination holds travel, with the other image files. The destination rebuilds the
 * pages images and restores; once it confirms, the source copy is killed. Any failure before
 * that resumes the source.
 *
 * @module
 */
import { pageHashes } from "../native/page_hash.ts";
import { decodeDumpStats, readDumpDir } from "../criu/images/mod.ts";
import { criuDump } from "../criu/run.ts";
import type { MigrationChannel } from "./channel.ts";
import { MANIFEST_FILE, type Verification, type VerifyRequest } from "./contract.ts";
import { imageFilesToSend } from "./files.ts";
import { type HeldPages, LedgerChannel, PageLedger } from "./ledger.ts";
import { ManifestBuilder } from "./manifest.ts";
import { BATCH_PAGES } from "./page_reader.ts";
import { precopy } from "./precopy.ts";
import { bootId, isAlive, nsPids, signalAll, treePids } from "../tracker/proc.ts";
import { type CpuThrottle, createThrottle } from "./throttle.ts";
import {
  type MigrationContext,
  type MigrationEngine,
  MigrationError,
  type MigrationOutcome,
  outcomeOf,
  type PhaseTimes,
} from "./types.ts";

const PAGE = 4096;

/** The delta engine. */
export const deltaEngine: MigrationEngine = {
  name: "delta",
  migrate: (ctx) => migrateDelta(ctx),
};

/** Run a delta migration (pre-copy rounds, then a stop-and-copy of the difference). */
export async function migrateDelta(ctx: MigrationContext): Promise<MigrationOutcome> {
  const started = performance.now();
  let throttle: CpuThrottle | undefined;
  try {
    throttle = ctx.throttle === false ? undefined : createThrottle(ctx.id, () => treePids(ctx.pid));
  } catch {
    throttle = undefined; // no cpu controller: policies asking to throttle just continue
  }
  // Every page sent is recorded with its hash: the final phase compares against this ledger.
  const ledger = new PageLedger();
  let rounds;
  ctx = { ...ctx, channel: new LedgerChannel(ctx.channel, ledger) };
  try {
    ctx.onPhase?.("precopy");
    rounds = (await precopy(ctx, throttle)).rounds;
  } catch (e) {
    throttle?.release();
    await ctx.channel.abort(`pre-copy failed: ${(e as Error).message}`).catch(() => {});
    throw new MigrationError(
      `pre-copy failed: ${(e as Error).message}`,
      "precopy",
      isAlive(ctx.pid),
    );
  }
  throttle?.release();
  const final = await stopAndCopy(ctx, ledger);
  return outcomeOf("delta", ctx, started, rounds, final);
}

/** What the final phase did. */
export interface FinalPhase {
  /** Freeze → restored tree running, in ms. */
  downtimeMs: number;
  /** Restored root pid on the destination. */
  destPid: number;
  /** Phase timings. */
  phases: PhaseTimes;
  /** Pages sent in the final phase. */
  pages: number;
  /** What the destination verified against the page manifest. */
  verified?: Verification;
}

/**
 * Freeze and dump the tree, send what the destination lacks (per `ledger`, the pages sent so
 * far) with the final page manifest, restore there (verified), end the source. Resumes the
 * source and throws {@linkcode MigrationError} on any failure before the destination confirms.
 */
export async function stopAndCopy(
  ctx: MigrationContext,
  ledger: PageLedger,
): Promise<FinalPhase> {
  const dir = `${ctx.workDir}/dump`;
  await Deno.mkdir(dir, { recursive: true });
  const sourcePids = treePids(ctx.pid);
  const ownPidNs = nsPids(ctx.pid).at(-1) === 1;
  const phases: PhaseTimes = { freeze_ms: 0, dump_ms: 0, transfer_ms: 0, restore_ms: 0 };
  let phase: "frozen" | "restoring" = "frozen";
  const freezeAt = performance.now();
  try {
    ctx.signal?.throwIfAborted();
    ctx.onPhase?.("frozen");
    ctx.onProgress?.({ kind: "phase", phase: "freeze" });
    const dump = await criuDump({
      pid: ctx.pid,
      dir,
      leave: "stopped",
      signal: ctx.signal,
      ...tcpDumpOptions(ctx),
    });
    phases.dump_ms = dump.ms;
    phases.freeze_ms = await freezeMs(dir, dump.ms);
    ctx.onProgress?.({ kind: "phase", phase: "transfer" });
    const transferAt = performance.now();
    const images = await readDumpDir(dir);
    const manifest = new ManifestBuilder();
    let pages = 0;
    for (const mem of images.memory) {
      const file = `${dir}/${mem.pagesFile}`;
      const have = ledger.held(mem.pid);
      pages += await sendChangedPages(ctx.channel, mem.pid, mem.addresses, file, have, manifest);
    }
    const shmemOf = new Map(images.shmem.map((s) => [s.pagesFile, s]));
    for (const name of await imageFilesToSend(dir, true)) {
      const data = await Deno.readFile(`${dir}/${name}`);
      const shmem = shmemOf.get(name);
      if (shmem) manifest.add("shmem", shmem.id, shmem.offsets, pageHashes(data));
      await ctx.channel.sendFile(name, data);
    }
    await ctx.channel.sendFile(MANIFEST_FILE, manifest.encode());
    await ctx.channel.flush();
    phases.transfer_ms = performance.now() - transferAt;
    ctx.signal?.throwIfAborted();
    phase = "restoring";
    ctx.onPhase?.("restoring");
    ctx.onProgress?.({ kind: "phase", phase: "restore" });
    const verify = { mode: ctx.verify ?? "sample", pages: manifest.pages } as const;
    const { pid: destPid, verified } = await restoreAtPeer(ctx, "delta", phases, verify);
    const downtimeMs = performance.now() - freezeAt;
    endSource(ctx.pid, sourcePids, ownPidNs);
    ctx.onPhase?.("done");
    ctx.onProgress?.({ kind: "phase", phase: "done" });
    return { downtimeMs, destPid, phases, pages, verified };
  } catch (e) {
    signalAll(sourcePids, "SIGCONT");
    ctx.onProgress?.({ kind: "phase", phase: "rollback" });
    await ctx.channel.abort(`source rolled back: ${(e as Error).message}`).catch(() => {});
    throw new MigrationError(
      `${phase === "frozen" ? "stop-and-copy" : "restore"} failed: ${(e as Error).message}`,
      phase,
      isAlive(ctx.pid),
    );
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** CRIU dump options for the context's TCP mode. */
export function tcpDumpOptions(ctx: MigrationContext): {
  tcpClose?: boolean;
  tcpEstablished?: boolean;
  networkLock?: "nftables";
} {
  if (ctx.tcp === "close") return { tcpClose: true };
  if (ctx.tcp === "established") return { tcpEstablished: true, networkLock: "nftables" };
  return {};
}

/**
 * Ask the destination to rebuild the pages images from its store and restore the tree (checked
 * against the page manifest first and read back after, when `verify` is given); records the
 * restore time in `phases`. Throws when the destination could not restore or verify.
 *
 * @returns the restored root's pid on the destination and what it verified
 */
export async function restoreAtPeer(
  ctx: MigrationContext,
  engine: "delta" | "predump",
  phases: PhaseTimes,
  verify?: VerifyRequest,
): Promise<{ pid: number; verified?: Verification }> {
  const restoreAt = performance.now();
  const result = await ctx.channel.restore({
    engine,
    rebuildPages: true,
    sourceBootId: bootId(),
    ...(verify ? { verify } : {}),
    ...tcpRestoreRequest(ctx),
  });
  phases.restore_ms = performance.now() - restoreAt;
  if (!result.ok || result.pid === undefined) {
    throw new Error(`destination could not restore: ${result.error ?? "no pid"}`);
  }
  if (verify && !result.verified) {
    throw new Error("the destination did not verify the restored tree against the manifest");
  }
  return { pid: result.pid, verified: result.verified };
}

/** Restore request fields for the context's TCP mode. */
export function tcpRestoreRequest(ctx: MigrationContext): {
  tcpClose?: boolean;
  tcpEstablished?: boolean;
} {
  if (ctx.tcp === "close") return { tcpClose: true };
  if (ctx.tcp === "established") return { tcpEstablished: true };
  return {};
}

/** Pages read from a pages image per step of {@linkcode sendChangedPages}. */
const READ_PAGES = 2048;

/**
 * Stream a dumped pages file, hash each page (once), record every hash in `manifest`, and send
 * those whose hash differs from the destination's (`held`); returns how many were sent.
 */
export async function sendChangedPages(
  channel: MigrationChannel,
  pid: number,
  addresses: number[],
  file: string,
  held: HeldPages | undefined,
  manifest?: ManifestBuilder,
): Promise<number> {
  const f = await Deno.open(file, { read: true });
  const buf = new Uint8Array(READ_PAGES * PAGE);
  let sent = 0;
  try {
    for (let base = 0; base < addresses.length; base += READ_PAGES) {
      const count = Math.min(READ_PAGES, addresses.length - base);
      const data = buf.subarray(0, count * PAGE);
      let off = 0;
      while (off < data.length) {
        const n = f.readSync(data.subarray(off));
        if (n === null || n === 0) {
          throw new Error(`${file} ends early at page ${base + off / PAGE}`);
        }
        off += n;
      }
      const hashes = pageHashes(data);
      manifest?.add("process", pid, addresses.slice(base, base + count), hashes);
      const changed: number[] = [];
      for (let i = 0; i < count; i++) {
        const have = held?.get(addresses[base + i]);
        if (!have || !sameHash(have, hashes, i * 16)) changed.push(i);
      }
      for (let i = 0; i < changed.length; i += BATCH_PAGES) {
        const idx = changed.slice(i, i + BATCH_PAGES);
        const batch = new Uint8Array(idx.length * PAGE);
        const h = new Uint8Array(idx.length * 16);
        idx.forEach((k, n) => {
          batch.set(data.subarray(k * PAGE, (k + 1) * PAGE), n * PAGE);
          h.set(hashes.subarray(k * 16, k * 16 + 16), n * 16);
        });
        await channel.sendPages({
          pid,
          addresses: Float64Array.from(idx.map((k) => addresses[base + k])),
          data: batch,
          hashes: h,
        });
      }
      sent += changed.length;
    }
  } finally {
    f.close();
  }
  return sent;
}

function sameHash(a: Uint8Array, all: Uint8Array, at: number): boolean {
  for (let i = 0; i < 16; i++) if (a[i] !== all[at + i]) return false;
  return true;
}

async function freezeMs(dir: string, fallback: number): Promise<number> {
  try {
    return decodeDumpStats(await Deno.readFile(`${dir}/stats-dump`)).freezingUs / 1000;
  } catch {
    return fallback;
  }
}

/** Kill the stopped source tree once the destination runs it. */
function endSource(root: number, pids: number[], ownPidNs: boolean): void {
  if (ownPidNs) signalAll([root], "SIGKILL");
  signalAll(pids, "SIGKILL");
}
