/**
 * The U2C policy: the paper's "stop at the predicted minimum" rule grown into the objective
 * (least total time with downtime within a slack of the best reachable, or under a budget),
 * plus `hybrid` (pre-copy, then post-copy when pre-copy will not converge) and the oracle plan.
 *
 * @module
 */
import { type PageSet, pageSetSize } from "../tracker/types.ts";
import type { Decision, PolicyState, PredictionView, StopPolicy } from "./types.ts";

/** Options of the u2c policy. */
export interface U2cOptions {
  /** Registry name reported. @default "u2c" */
  name?: string;
  /** Most pre-copy rounds. @default 10 */
  maxRounds?: number;
  /** Stop once at most this many pages are pending. @default 64 */
  minPages?: number;
  /** Defer pages whose re-dirty probability within one round is at least this (>1 disables). @default 0.5 */
  deferThreshold?: number;
  /** What to do when pre-copy cannot pay off. @default "stop-and-copy" */
  fallback?: "stop-and-copy" | "post-copy";
  /** Throttle steps tried, in percent, when a budget cannot otherwise be met. @default [20, 40, 60, 80, 95] */
  throttleSteps?: number[];
  /**
   * Scale predicted counts by the smoothed ratio of the last rounds' actual to predicted dirty
   * counts (the old guard against a tick-trained predictor; off since predictions are made for
   * round windows). @default false
   */
  biasCorrection?: boolean;
}

/**
 * Pending pages the objective tolerates: the downtime of sending them plus the fixed costs stays
 * within the budget, or within the slack over the downtime of the predicted floor.
 */
function budgetPages(state: PolicyState, floor: number): number {
  const fixed = state.fixedDowntimeMs ?? 0;
  const msPerPage = state.wireBytesPerPage / state.link.bandwidthBps * 1000 +
    (state.finalMsPerPage ?? 0);
  const limitMs = state.maxDowntimeMs ?? (fixed + floor * msPerPage) * (1 + state.downtimeSlack);
  return Math.max(0, (limitMs - fixed) / msPerPage);
}

/** Milliseconds of workload time a round sending `pages` takes (throttling slows the workload). */
function roundWorkloadMs(state: PolicyState, pages: number): number {
  const wireMs = pages * state.wireBytesPerPage / state.link.bandwidthBps * 1000 + state.link.rttMs;
  return wireMs * (1 - state.throttlePercent / 100);
}

/**
 * The pending pages predicted to be written again during the next round, so that sending them now
 * would be wasted. The round is sized by what it would actually send: deferring pages shortens it,
 * and a page is deferred only if it is likely rewritten even within that shorter round.
 *
 * @param state the policy state (pending pages, link, throttle)
 * @param view the prediction
 * @param threshold defer at this probability or above (> 1 disables deferral)
 */
export function deferredPages(
  state: PolicyState,
  view: PredictionView,
  threshold: number,
): PageSet | undefined {
  if (threshold > 1) return undefined;
  const pick = (probability: (id: number, page: number) => number) => {
    const out: PageSet = new Map();
    let count = 0;
    for (const [id, pages] of state.pending) {
      const keep: number[] = [];
      for (const p of pages) if (probability(id, p) >= threshold) keep.push(p);
      if (keep.length > 0) {
        out.set(id, Uint32Array.from(keep));
        count += keep.length;
      }
    }
    return { out, count };
  };
  let chosen: { out: PageSet; count: number };
  if (view.willRedirtyWithin) {
    const within = view.willRedirtyWithin;
    // Two steps of the fixed point: size the round by everything, then by what is left to send.
    const full = roundWorkloadMs(state, state.pendingPages);
    const first = pick((id, p) => within(id, p, full));
    const shorter = roundWorkloadMs(state, state.pendingPages - first.count);
    chosen = pick((id, p) => within(id, p, shorter));
  } else if (view.willRedirty) {
    const next = view.willRedirty;
    chosen = pick((id, p) => next(id, p, 1));
  } else {
    return undefined;
  }
  return chosen.count > 0 ? chosen.out : undefined;
}

/**
 * The u2c policy. Without a prediction it falls back to "stop when a round did not shrink".
 *
 * The predictions are used as they are (for rounds of the lengths they will take); one guard keeps
 * it honest against a predictor that is off on a workload: pre-copy stops once two rounds in a
 * row failed to bring the pending pages clearly below the best seen so far (a plateau in the
 * actual rounds outranks a prediction of further progress). `biasCorrection` brings back the old
 * scaling of predictions by the last rounds' actual / predicted ratio, for comparison.
 *
 * @param options knobs, sensible defaults
 */
export function u2cPolicy(options: U2cOptions = {}): StopPolicy {
  const {
    name = "u2c",
    maxRounds = 10,
    minPages = 64,
    deferThreshold = 0.5,
    fallback = "stop-and-copy",
    throttleSteps = [20, 40, 60, 80, 95],
    biasCorrection = false,
  } = options;
  const stop: Decision = { action: "stop-and-copy" };
  let predictedNext: number | undefined; // dirty count predicted for the round being run
  let bias = 1; // smoothed actual / predicted
  let best = Infinity; // fewest pending pages after a round so far
  let stalled = 0; // rounds in a row without clear progress below `best`
  return {
    name,
    decide(state: PolicyState): Decision {
      const { rounds, pendingPages, prediction } = state;
      const last = rounds.at(-1);
      if (biasCorrection && last && predictedNext !== undefined && predictedNext > 0) {
        const ratio = Math.min(4, Math.max(0.25, last.pagesDirtied / predictedNext));
        bias = rounds.length === 1 ? ratio : 0.5 * bias + 0.5 * ratio;
      }
      if (last) {
        stalled = pendingPages > 0.9 * best ? stalled + 1 : 0;
        best = Math.min(best, pendingPages);
      }
      if (pendingPages <= minPages || rounds.length >= maxRounds || stalled >= 2) return stop;
      // The full first round left nearly everything dirty again: pre-copy cannot pay off.
      if (rounds.length === 1 && pendingPages > 0.9 * state.totalPages) return { action: fallback };
      if (!prediction || prediction.expectedDirty.length === 0) {
        const last = rounds.at(-1);
        const prev = rounds.at(-2);
        return last && prev && last.pagesSent >= prev.pagesSent ? stop : { action: "continue" };
      }
      predictedNext = prediction.expectedDirty[0];
      const floor = Math.min(pendingPages, bias * Math.min(...prediction.expectedDirty));
      const budget = budgetPages(state, floor);
      // Pre-copy cannot pay off: sending now is already as good as it gets.
      if (rounds.length === 0 && pendingPages <= floor * (1 + state.downtimeSlack)) {
        return { action: fallback };
      }
      if (pendingPages <= budget) return stop;
      // The paper's rule: the current round is the predicted minimum over the horizon.
      if (rounds.length > 0 && pendingPages <= floor) {
        const throttle = pickThrottle(state, prediction, budget, throttleSteps);
        if (throttle === undefined) return stop;
        return { action: "throttle", percent: throttle };
      }
      const defer = deferredPages(state, prediction, deferThreshold);
      // A round that would send (almost) nothing but defer the rest gains nothing: stop.
      if (rounds.length > 0 && pendingPages - (defer ? pageSetSize(defer) : 0) <= minPages) {
        return stop;
      }
      if (floor > budget) {
        const throttle = pickThrottle(state, prediction, budget, throttleSteps);
        if (throttle !== undefined) return { action: "throttle", percent: throttle, defer };
      }
      return { action: "continue", defer };
    },
  };
}

/** The smallest throttle step above the current one predicted to bring pending under budget. */
function pickThrottle(
  state: PolicyState,
  view: PredictionView,
  budget: number,
  steps: number[],
): number | undefined {
  if (state.maxDowntimeMs === undefined || !view.expectedDirtyThrottled) return undefined;
  for (const s of steps) {
    if (s <= state.throttlePercent) continue;
    if (view.expectedDirtyThrottled(s) <= budget) return s;
  }
  return undefined;
}

/**
 * Hybrid: pre-copy at least once under the u2c rule; where u2c would stop with a downtime over
 * the budget (or, with no budget, with more than `postCopyShare` of memory pending), switch to
 * post-copy instead.
 *
 * @param options u2c knobs plus the share above which post-copy is preferred
 */
export function hybridPolicy(options: U2cOptions & { postCopyShare?: number } = {}): StopPolicy {
  const { postCopyShare = 0.25 } = options;
  const inner = u2cPolicy({ ...options, name: "hybrid", fallback: "stop-and-copy" });
  return {
    name: "hybrid",
    decide(state: PolicyState): Decision {
      const d = state.rounds.length === 0 ? { action: "continue" as const } : inner.decide(state);
      if (d.action !== "stop-and-copy") return d;
      const downtimeMs = state.pendingPages *
        (state.wireBytesPerPage / state.link.bandwidthBps * 1000 + (state.finalMsPerPage ?? 0));
      const tooBig = state.maxDowntimeMs !== undefined
        ? downtimeMs > state.maxDowntimeMs
        : state.pendingPages > postCopyShare * state.totalPages;
      return tooBig ? { action: "post-copy" } : d;
    },
  };
}

/** Options of the oracle plan. */
export interface OraclePlan {
  /** Pre-copy rounds before stop-and-copy. @default 0 */
  stopAfter?: number;
  /** Defer pages the (perfect) prediction says are re-dirtied in the next round. @default false */
  defer?: boolean;
}

/**
 * One oracle plan: a fixed stop round, optionally deferring what a perfect predictor flags. The
 * simulator searches plans with the trace's future (see `oracleSearch` in src/sim).
 *
 * @param plan the stop round and whether to defer
 */
export function oraclePolicy(plan: OraclePlan = {}): StopPolicy {
  const { stopAfter = 0, defer = false } = plan;
  return {
    name: "oracle",
    decide(state: PolicyState): Decision {
      if (state.rounds.length >= stopAfter) return { action: "stop-and-copy" };
      const d = defer && state.prediction ? deferredPages(state, state.prediction, 0.5) : undefined;
      return { action: "continue", defer: d };
    },
  };
}
