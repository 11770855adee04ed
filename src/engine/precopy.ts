/**
 * The pre-copy loop: before every round the policy sees the rounds so far, the pending pages, the
 * link and the prediction, and decides — continue (deferring some pages), throttle, or end with
 * the final phase it names. The loop has no round cap of its own: caps live in the policy.
 *
 * @module
 */
import type { PolicyState, RoundRecord } from "../policy/types.ts";
import type { PredictionProvider } from "../predict/provider.ts";
import { pageSetSize } from "../tracker/types.ts";
import type { MigrationChannel } from "./channel.ts";
import type { RoundSource } from "./parts.ts";
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
  /** The final phase the policy asked for. */
  final: "stop-and-copy" | "post-copy";
  /** The rounds run. */
  rounds: RoundReport[];
}

/** What the loop needs besides the round source. */
export interface PrecopyOptions {
  /** The migration (policy, budget, signal, progress). */
  ctx: MigrationContext;
  /** The channel (bytes sent, compression). */
  channel: MigrationChannel;
  /** The predictor the policy sees (the round source feeds it). */
  provider: PredictionProvider;
  /** The CPU throttle, when one could be set up. */
  throttle?: CpuThrottle;
}

/**
 * Run pre-copy rounds from `source` until the policy names a final phase.
 *
 * @example
 * ```ts
 * const { final, rounds } = await precopy(hashRounds({ pid, channel, provider }), opts);
 * ```
 */
export async function precopy(source: RoundSource, opts: PrecopyOptions): Promise<PrecopyResult> {
  const { ctx, channel, provider, throttle } = opts;
  const rounds: RoundReport[] = [];
  const records: RoundRecord[] = [];
  let linkBps = 125e6; // a 1 Gbit/s guess until the first round measures the link
  // The policy's round model is `pages × wire bytes / bandwidth + rttMs`; a live round also
  // costs a scan and the minimum round spacing, so rttMs carries that measured overhead.
  let rttMs = 1;
  // Bytes a page costs on the wire: with compression on, what the batches so far shrank to.
  const wireBytesPerPageNow = () => {
    const c = channel.compression;
    if (!c?.active || c.packedRawBytes === 0) return PAGE_WIRE_BYTES;
    return PAGE_FRAME_OVERHEAD + 4096 * (c.packedBytes / c.packedRawBytes);
  };
  let state = await source.begin();
  for (let r = 0; r < Number.MAX_SAFE_INTEGER; r++) {
    ctx.signal?.throwIfAborted();
    const wireBytesPerPage = wireBytesPerPageNow();
    const prediction = r === 0 ? undefined : await provider.view({
      pendingPages: state.pendingPages,
      bandwidthBps: linkBps,
      rttMs,
      wireBytesPerPage,
      throttlePercent: throttle?.percent ?? 0,
      nowMs: performance.now(),
    });
    const policyState: PolicyState = {
      rounds: records,
      pendingPages: state.pendingPages,
      pending: state.pending,
      link: { bandwidthBps: linkBps, rttMs },
      pageSize: 4096,
      wireBytesPerPage,
      totalPages: state.residentPages,
      throttlePercent: throttle?.percent ?? 0,
      fixedDowntimeMs: fixedDowntimeMs(state.residentPages),
      maxDowntimeMs: ctx.maxDowntimeMs,
      downtimeSlack: ctx.downtimeSlack ?? 0.1,
      prediction,
    };
    const decision = ctx.policy.decide(policyState);
    if (decision.action === "stop-and-copy" || decision.action === "post-copy") {
      return { final: decision.action, rounds };
    }
    if (decision.action === "throttle" && throttle) throttle.set(decision.percent);
    // The prediction made before the round, for the length the round is expected to take.
    const toSend = state.pendingPages -
      (decision.defer ? Math.min(state.pendingPages, pageSetSize(decision.defer)) : 0);
    const expectedMs = (toSend * wireBytesPerPage / linkBps * 1000 + rttMs) *
      (1 - (throttle?.percent ?? 0) / 100);
    const predictedDirty = prediction?.expectedDirtyWithin?.(expectedMs) ??
      prediction?.expectedDirty[0];
    const started = performance.now();
    const bytesBefore = channel.bytesSent;
    const before = state.pendingPages;
    const done = await source.round(decision.defer);
    const bytes = channel.bytesSent - bytesBefore;
    if (bytes > 64 * 1024 && done.sendMs > 0) linkBps = bytes / (done.sendMs / 1000);
    rttMs = Math.max(1, done.overheadMs);
    const durationMs = performance.now() - started;
    records.push({
      index: r,
      pagesSent: done.sent,
      pagesDeferred: decision.defer ? Math.min(before, pageSetSize(decision.defer)) : 0,
      pagesSkipped: Math.max(0, done.residentPages - done.sent),
      pagesDirtied: done.dirtied,
      durationMs,
      bytesSent: bytes,
      predictedDirty,
    });
    const round: RoundReport = {
      index: r,
      pages_sent: done.sent,
      pages_dirtied: done.dirtied,
      predicted_dirty: predictedDirty === undefined ? null : Math.round(predictedDirty),
      duration_ms: Math.round(durationMs * 10) / 10,
      bytes,
    };
    rounds.push(round);
    ctx.onProgress?.({ kind: "round", round, bytesSent: channel.bytesSent, linkBps });
    state = done;
  }
  return { final: "stop-and-copy", rounds };
}
