/**
 * Replay one trace through one policy on a modelled link.
 *
 * Model: round i sends the pending dirty pages (round 0: every resident page) minus the deferred
 * ones; it lasts `bytes / bandwidth + rtt`; the pages written meanwhile are the trace's dirty sets
 * over that window (see {@linkcode TraceTimeline}). Throttling by p % slows the workload: a wall
 * window of d ms covers d × (1 − p/100) ms of trace time. Stop-and-copy: downtime = freeze +
 * CRIU's per-page cost × pages dumped (the pending ones; every resident one with the `delta`
 * engine) + pending bytes / bandwidth + rtt + restore. Post-copy: downtime = freeze + rtt + restore; the
 * pending pages then stream in the background and every pending page written during that fill is
 * counted as a remote fault.
 *
 * @module
 */
import type { Decision, PolicyState, RoundRecord, StopPolicy } from "../policy/types.ts";
import type { Trace } from "../trace/types.ts";
import type { PredictionProvider } from "../predict/provider.ts";
import {
  andNot,
  type Bitmap,
  orInto,
  popcount,
  popcountAnd,
  popcountOr,
  setBit,
} from "./bitmap.ts";
import { TraceTimeline } from "./timeline.ts";

/** The modelled link and migration costs. */
export interface SimConfig {
  /** Bandwidth in bytes per second. */
  bandwidthBps: number;
  /** Round-trip time in ms. @default 0 */
  rttMs?: number;
  /** Extra bytes on the wire per page (headers, page map). @default 0 */
  perPageOverheadBytes?: number;
  /** Page bytes are divided by this (compression). @default 1 */
  compressionRatio?: number;
  /** Fixed cost of freezing and dumping non-memory state, in ms. @default 0 */
  freezeMs?: number;
  /** Fixed cost of restoring on the target, in ms. @default 0 */
  restoreMs?: number;
  /** CRIU's cost per page dumped in the final phase, in µs. @default 0 */
  dumpUsPerPage?: number;
  /** CRIU's cost per page restored, in µs. @default 0 */
  restoreUsPerPage?: number;
  /**
   * Which pages the final CRIU dump and restore handle: `predump` (a pre-dump chain with
   * soft-dirty: only the pages dirty since the last pre-dump) or `delta` (u2cm's content-hash
   * pre-copy: CRIU dumps and restores every resident page, only changed ones cross the link).
   * @default "predump"
   */
  engine?: "predump" | "delta";
  /** Trace time at which the migration starts, in ms. @default 10 intervals, or 10 % of the trace */
  startMs?: number;
  /** Safety cap on pre-copy rounds whatever the policy says. @default 60 */
  maxRounds?: number;
  /** Tolerated downtime above the best reachable (policies see it). @default 0.1 */
  downtimeSlack?: number;
  /** Absolute downtime budget in ms (policies see it). */
  maxDowntimeMs?: number;
}

/** What one simulated migration cost. */
export interface SimResult {
  /** Policy name. */
  policy: string;
  /** Start to resumed-on-target (post-copy: until the last page arrived), in ms. */
  totalMs: number;
  /** Time the workload was frozen, in ms. */
  downtimeMs: number;
  /** Bytes put on the wire. */
  bytes: number;
  /** Pre-copy rounds run. */
  rounds: number;
  /** Sum over rounds of pages held back. */
  deferredPages: number;
  /** Pages sent more than once (sends minus distinct pages). */
  pagesResent: number;
  /** Resident pages at the start. */
  residentPages: number;
  /** How the migration ended. */
  mode: "stop-and-copy" | "post-copy";
  /** Post-copy: pending pages written while they were still remote. */
  remoteFaults: number;
  /** Highest throttle applied, in percent. */
  maxThrottlePercent: number;
  /** The pre-copy rounds. */
  roundLog: RoundRecord[];
}

/** Default start: 10 intervals in, or 10 % of the trace when that is shorter. */
export function defaultStartMs(timeline: TraceTimeline): number {
  return Math.min(10 * timeline.intervalMs, timeline.periodMs * 0.1);
}

/**
 * Replay `trace` (or a prepared timeline) through `policy`.
 *
 * @param source the trace or its timeline
 * @param policy the policy deciding every round
 * @param config link and costs
 * @param provider predictor fed every sample; none = policies see no prediction
 * @example
 * ```ts
 * import { createPolicy } from "../policy/mod.ts";
 * declare const trace: import("../trace/types.ts").Trace;
 * const r = await simulate(trace, createPolicy("phaul"), { bandwidthBps: 125e6 });
 * console.log(r.totalMs, r.downtimeMs);
 * ```
 */
export async function simulate(
  source: Trace | TraceTimeline,
  policy: StopPolicy,
  config: SimConfig,
  provider?: PredictionProvider,
): Promise<SimResult> {
  return await replay(source, policy, config, provider);
}

/**
 * The replay behind {@linkcode simulate}. With `onDecision`, it also reports, before every
 * decision, what stopping there (stop-and-copy) would cost: the oracle's plans "stop after k
 * rounds" are prefixes of one run, so one replay prices them all.
 *
 * @param source the trace or its timeline
 * @param policy the policy deciding every round
 * @param config link and costs
 * @param provider predictor fed every sample
 * @param onDecision called with the stop-and-copy result at each decision point
 */
export async function replay(
  source: Trace | TraceTimeline,
  policy: StopPolicy,
  config: SimConfig,
  provider?: PredictionProvider,
  onDecision?: (stopHere: SimResult) => void,
): Promise<SimResult> {
  const tl = source instanceof TraceTimeline ? source : new TraceTimeline(source);
  const bw = config.bandwidthBps;
  if (!(bw > 0)) throw new RangeError("bandwidth must be positive");
  const rtt = config.rttMs ?? 0;
  const wire = tl.pageSize / (config.compressionRatio ?? 1) + (config.perPageOverheadBytes ?? 0);
  const msFor = (pages: number) => pages * wire / bw * 1000;
  const freeze = (config.freezeMs ?? 0) + (config.restoreMs ?? 0);
  const criuMsPerPage = ((config.dumpUsPerPage ?? 0) + (config.restoreUsPerPage ?? 0)) / 1000;
  const maxRounds = config.maxRounds ?? 60;
  const index = tl.index;
  let t = config.startMs ?? defaultStartMs(tl);
  let pending: Bitmap = tl.residentBitmap(t);
  let pendingCount = popcount(pending);
  const residentPages = pendingCount;
  const sentOnce: Bitmap = tl.empty();
  const rounds: RoundRecord[] = [];
  let wall = 0, bytes = 0, sends = 0, deferredTotal = 0, throttle = 0, maxThrottle = 0;
  if (provider) { for (const s of tl.samplesCompleting(-1, t)) provider.observe(s); }

  const finish = (mode: "stop-and-copy" | "post-copy"): SimResult => {
    const n = pendingCount;
    let downtimeMs: number, totalMs: number, remoteFaults = 0;
    if (mode === "stop-and-copy") {
      const criuPages = config.engine === "delta" ? residentPages : n;
      downtimeMs = freeze + criuPages * criuMsPerPage + msFor(n) + (n > 0 ? rtt : 0);
      totalMs = wall + downtimeMs;
    } else {
      downtimeMs = freeze + rtt;
      const fill = msFor(n);
      remoteFaults = popcountAnd(tl.dirtyBitmap(t, t + fill), pending);
      totalMs = wall + downtimeMs + fill;
    }
    return {
      policy: policy.name,
      totalMs,
      downtimeMs,
      bytes: bytes + n * wire,
      rounds: rounds.length,
      deferredPages: deferredTotal,
      pagesResent: sends + n - popcountOr(sentOnce, pending),
      residentPages,
      mode,
      remoteFaults,
      maxThrottlePercent: maxThrottle,
      roundLog: [...rounds],
    };
  };

  for (;;) {
    const state: PolicyState = {
      rounds,
      pendingPages: pendingCount,
      pending: index.pageSetOf(pending),
      link: { bandwidthBps: bw, rttMs: rtt },
      pageSize: tl.pageSize,
      wireBytesPerPage: wire,
      totalPages: residentPages,
      throttlePercent: throttle,
      fixedDowntimeMs: freeze + rtt +
        (config.engine === "delta" ? residentPages * criuMsPerPage : 0),
      finalMsPerPage: config.engine === "delta" ? 0 : criuMsPerPage,
      maxDowntimeMs: config.maxDowntimeMs,
      downtimeSlack: config.downtimeSlack ?? 0.1,
      prediction: await provider?.view({
        pendingPages: pendingCount,
        bandwidthBps: bw,
        rttMs: rtt,
        wireBytesPerPage: wire,
        throttlePercent: throttle,
        nowMs: t,
      }),
    };
    onDecision?.(finish("stop-and-copy"));
    const decision: Decision = rounds.length >= maxRounds
      ? { action: "stop-and-copy" }
      : policy.decide(state);
    if (decision.action === "stop-and-copy" || decision.action === "post-copy") {
      return finish(decision.action);
    }
    if (decision.action === "throttle") {
      throttle = Math.min(99, Math.max(0, decision.percent));
      maxThrottle = Math.max(maxThrottle, throttle);
    }
    const deferred = tl.empty();
    let deferredCount = 0;
    if (decision.defer) {
      for (const [id, pages] of decision.defer) {
        for (const p of pages) {
          const d = index.denseOf(id, p);
          if (d < 0 || ((pending[d >>> 5] >>> (d & 31)) & 1) === 0) continue;
          if (((deferred[d >>> 5] >>> (d & 31)) & 1) === 0) deferredCount++;
          setBit(deferred, d);
        }
      }
    }
    const toSend = pendingCount - deferredCount;
    const durationMs = msFor(toSend) + rtt;
    const traceMs = durationMs * (1 - throttle / 100);
    const dirtied = tl.dirtyBitmap(t, t + traceMs);
    const dirtiedCount = popcount(dirtied);
    orInto(sentOnce, andNot(pending, deferred));
    pending = orInto(deferred, dirtied);
    pendingCount = popcount(pending);
    if (provider) { for (const s of tl.samplesCompleting(t, t + traceMs)) provider.observe(s); }
    rounds.push({
      index: rounds.length,
      pagesSent: toSend,
      pagesDeferred: deferredCount,
      pagesSkipped: Math.max(0, residentPages - toSend - deferredCount),
      pagesDirtied: dirtiedCount,
      durationMs,
      bytesSent: toSend * wire,
      // The prediction made before the round, for the round's own length.
      predictedDirty: state.prediction?.expectedDirtyWithin?.(traceMs) ??
        state.prediction?.expectedDirty[0],
    });
    sends += toSend;
    bytes += toSend * wire;
    deferredTotal += deferredCount;
    wall += durationMs;
    t += traceMs;
  }
}
