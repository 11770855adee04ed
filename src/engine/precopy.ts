/**
 * The live pre-copy loop shared by the delta and hybrid engines: scan the tree with the dirty
 * tracker, ask the policy, send the pending pages (minus those it defers) while the workload
 * runs, repeat — until the policy says stop-and-copy or post-copy, or the round limit is hit.
 *
 * @module
 */
import type { Decision, PolicyState, RoundRecord } from "../policy/types.ts";
import { FeatureSampler } from "../history/features.ts";
import { MovingWindowProvider } from "../sim/provider.ts";
import { createTracker } from "../tracker/mod.ts";
import { type Mapping, type PageSet, pageSetSize } from "../tracker/types.ts";
import { PageReader, sendLivePages } from "./page_reader.ts";
import { subtractPages, unionPages } from "./pageset.ts";
import { pidNamespaceMap } from "../tracker/proc.ts";
import type { CpuThrottle } from "./throttle.ts";
import type { MigrationContext, RoundReport } from "./types.ts";

/** Per-page bytes of a page frame besides the page itself (address and hash). */
const PAGE_FRAME_OVERHEAD = 24;
/** Bytes an uncompressed page costs on the wire. */
const PAGE_WIRE_BYTES = 4096 + PAGE_FRAME_OVERHEAD;

/** Downtime the final phase costs whatever is pending, in ms: freeze, CRIU start, restore RPC. */
export const FIXED_DOWNTIME_MS = 100;

/**
 * Milliseconds of downtime per resident page that the final phase costs whatever is pending:
 * CRIU writes every page to tmpfs, u2cm hashes it, the destination rebuilds the pages image and
 * CRIU reads it back. Measured here: ~1.2 s for 256 MiB (65 536 pages) at 1 Gbit/s.
 */
export const DOWNTIME_MS_PER_RESIDENT_PAGE = 0.015;

/** The final phase's downtime that does not depend on the pending pages, for `residentPages`. */
export function fixedDowntimeMs(residentPages: number): number {
  return FIXED_DOWNTIME_MS + residentPages * DOWNTIME_MS_PER_RESIDENT_PAGE;
}

/** How pre-copy ended. */
export interface PrecopyResult {
  /** What the final phase should be. */
  final: "stop-and-copy" | "post-copy";
  /** The rounds run. */
  rounds: RoundReport[];
  /** Host pid → pid in the tree's namespace. */
  pidMap: Map<number, number>;
  /** Last link estimate in bytes/s. */
  linkBps: number;
}

/** Run pre-copy rounds for `ctx` until the policy stops them. */
export async function precopy(
  ctx: MigrationContext,
  throttle?: CpuThrottle,
): Promise<PrecopyResult> {
  const maxRounds = ctx.maxRounds ?? 30;
  const minRoundMs = ctx.minRoundMs ?? 50;
  const tracker = createTracker({ pid: ctx.pid, backend: "auto" });
  const provider = ctx.provider ?? new MovingWindowProvider(20, 3);
  const features = new FeatureSampler(ctx.pid);
  const pidMap = pidNamespaceMap(ctx.pid);
  const mappings = new Map<number, Mapping>();
  const readers = new Map<number, PageReader>();
  const rounds: RoundReport[] = [];
  const records: RoundRecord[] = [];
  let linkBps = 125e6; // a 1 Gbit/s guess until the first round measures the link
  // The policy's round model is `pages × wire bytes / bandwidth + rttMs`; a live round also
  // costs a tracker scan and the minimum round spacing, so rttMs carries that measured overhead.
  let rttMs = 1;
  // Bytes a page costs on the wire: with compression on, what the batches so far shrank to.
  const wireBytesPerPageNow = () => {
    const c = ctx.channel.compression;
    if (!c?.active || c.packedRawBytes === 0) return PAGE_WIRE_BYTES;
    return PAGE_FRAME_OVERHEAD + 4096 * (c.packedBytes / c.packedRawBytes);
  };
  try {
    let scan = tracker.scan();
    let lastScan = performance.now();
    // The baseline round brings the tree's mappings to the predictor; nothing is dirty yet.
    provider.observe({
      dirty: new Map(),
      intervalMs: 0,
      round: { ...scan, round: 0, features: features.sample(scan.pids) },
    });
    absorb(scan.added, scan.removed);
    let pending: PageSet = scan.dirty;
    let resident = scan.residentPages;
    for (let r = 0; r < maxRounds; r++) {
      ctx.signal?.throwIfAborted();
      const pendingPages = pageSetSize(pending);
      const wireBytesPerPage = wireBytesPerPageNow();
      const prediction = r === 0 ? undefined : await provider.view({
        pendingPages,
        bandwidthBps: linkBps,
        rttMs,
        wireBytesPerPage,
        throttlePercent: throttle?.percent ?? 0,
        nowMs: performance.now(),
      });
      const state: PolicyState = {
        rounds: records,
        pendingPages,
        pending,
        link: { bandwidthBps: linkBps, rttMs },
        pageSize: 4096,
        wireBytesPerPage,
        totalPages: resident,
        throttlePercent: throttle?.percent ?? 0,
        fixedDowntimeMs: fixedDowntimeMs(resident),
        maxDowntimeMs: ctx.maxDowntimeMs,
        downtimeSlack: ctx.downtimeSlack ?? 0.1,
        prediction,
      };
      const decision: Decision = ctx.policy.decide(state);
      if (decision.action === "stop-and-copy" || decision.action === "post-copy") {
        return { final: decision.action, rounds, pidMap, linkBps };
      }
      if (decision.action === "throttle" && throttle && ctx.throttle !== false) {
        throttle.set(decision.percent);
      }
      const deferred = decision.defer;
      const toSend = subtractPages(pending, deferred);
      const started = performance.now();
      const bytesBefore = ctx.channel.bytesSent;
      const sent = await sendPageSet(ctx, toSend, mappings, pidMap, readers);
      await ctx.channel.flush();
      const sendMs = performance.now() - started;
      const bytes = ctx.channel.bytesSent - bytesBefore;
      if (bytes > 64 * 1024 && sendMs > 0) linkBps = bytes / (sendMs / 1000);
      const wait = minRoundMs - (performance.now() - lastScan);
      if (wait > 0) await new Promise((res) => setTimeout(res, wait));
      scan = tracker.scan();
      const now = performance.now();
      rttMs = Math.max(1, now - started - sendMs);
      provider.observe({
        dirty: scan.dirty,
        intervalMs: now - lastScan,
        round: { ...scan, features: features.sample(scan.pids) },
      });
      lastScan = now;
      absorb(scan.added, scan.removed);
      for (const pid of scan.pids) if (!pidMap.has(pid)) refreshPidMap(ctx.pid, pidMap);
      resident = scan.residentPages;
      const dirtied = pageSetSize(scan.dirty);
      const deferredCount = pendingPages - pageSetSize(toSend);
      records.push({
        index: r,
        pagesSent: sent,
        pagesDeferred: deferredCount,
        pagesSkipped: Math.max(0, resident - sent),
        pagesDirtied: dirtied,
        durationMs: now - started,
        bytesSent: bytes,
      });
      const round: RoundReport = {
        index: r,
        pages_sent: sent,
        pages_dirtied: dirtied,
        predicted_dirty: prediction ? Math.round(prediction.expectedDirty[0] ?? 0) : null,
        duration_ms: round1(now - started),
        bytes,
      };
      rounds.push(round);
      ctx.onProgress?.({ kind: "round", round, bytesSent: ctx.channel.bytesSent, linkBps });
      pending = deferred ? unionPages(scan.dirty, deferred) : scan.dirty;
    }
    return { final: "stop-and-copy", rounds, pidMap, linkBps };
  } finally {
    for (const r of readers.values()) r.close();
    tracker.close();
  }

  function absorb(added: Mapping[], removed: number[]): void {
    for (const id of removed) mappings.delete(id);
    for (const m of added) mappings.set(m.id, m);
  }
}

/** Send the pages of `set` (by mapping) and return how many were sent. */
async function sendPageSet(
  ctx: MigrationContext,
  set: PageSet,
  mappings: Map<number, Mapping>,
  pidMap: Map<number, number>,
  readers: Map<number, PageReader>,
): Promise<number> {
  const byPid = new Map<number, number[]>();
  for (const [id, pages] of set) {
    const m = mappings.get(id);
    if (!m) continue;
    let list = byPid.get(m.pid);
    if (!list) byPid.set(m.pid, list = []);
    for (const p of pages) list.push(m.start + p * 4096);
  }
  let sent = 0;
  for (const [pid, addresses] of byPid) {
    const nsPid = pidMap.get(pid);
    if (nsPid === undefined) continue;
    let reader = readers.get(pid);
    if (!reader) {
      try {
        reader = new PageReader(pid);
      } catch {
        continue; // exited
      }
      readers.set(pid, reader);
    }
    addresses.sort((a, b) => a - b);
    sent += await sendLivePages(ctx.channel, reader, nsPid, addresses);
  }
  return sent;
}

function refreshPidMap(root: number, map: Map<number, number>): void {
  for (const [host, ns] of pidNamespaceMap(root)) map.set(host, ns);
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}
