/**
 * Score predictions in round windows: at decision points along a trace, every page of every live
 * mapping is predicted written (p ≥ 0.5) or not within the next d ms, and compared with the union
 * of the trace's ticks over that window; the predicted count (Σ p) with the real one.
 *
 * @module
 */
import type { Trace } from "../trace/types.ts";
import { PageHistory } from "./history.ts";
import type { PredictionProvider } from "./provider.ts";

/** Scores of one predictor on one trace for one window length. */
export interface WindowScore {
  /** Window length in ms. */
  windowMs: number;
  /** F1 of the written class. */
  f1: number;
  /** Precision of the written class. */
  precision: number;
  /** Recall of the written class. */
  recall: number;
  /** Median over decision points of |predicted − actual| / actual (points with ≥ 1 page written). */
  countApeMedian: number;
  /** Decision points scored. */
  points: number;
}

/** Options of {@linkcode evaluateWindows}. */
export interface WindowEvalOptions {
  /** Window lengths, ms. @default [500, 2000, 10000] */
  windowsMs?: number[];
  /** Rounds observed before the first decision point. @default 16 */
  warmup?: number;
  /** Rounds between decision points. @default 10 */
  every?: number;
}

/** A predictor under window scoring: a provider, or `last-value` (the last window's pages). */
export type WindowPredictor = PredictionProvider | "last-value";

/**
 * Replay `trace` through `predictor` and score it at every window length.
 *
 * @param trace the trace
 * @param predictor a fresh provider, or `last-value`
 * @param options windows, warm-up, spacing
 * @example
 * ```ts
 * declare const trace: Trace;
 * const scores = await evaluateWindows(trace, "last-value", { windowsMs: [2000] });
 * ```
 */
export async function evaluateWindows(
  trace: Trace,
  predictor: WindowPredictor,
  options: WindowEvalOptions = {},
): Promise<WindowScore[]> {
  const { windowsMs = [500, 2000, 10000], warmup = 16, every = 10 } = options;
  const rounds = trace.rounds;
  const t0 = rounds[0].elapsedMs;
  const history = new PageHistory(trace.header.pageSize, 0);
  const acc = windowsMs.map(() => ({ tp: 0, fp: 0, fn: 0, ape: [] as number[] }));
  let prevElapsed = t0;
  for (let t = 0; t < rounds.length; t++) {
    const r = rounds[t];
    const intervalMs = t === 0 ? 0 : r.elapsedMs - prevElapsed;
    prevElapsed = r.elapsedMs;
    history.observe(r);
    if (predictor !== "last-value") predictor.observe({ dirty: r.dirty, intervalMs, round: r });
    if (t < warmup || (t - warmup) % every !== 0) continue;
    const now = r.elapsedMs - t0;
    if (now + Math.min(...windowsMs) > rounds.at(-1)!.elapsedMs - t0) break;
    const view = predictor === "last-value" ? undefined : await predictor.view({
      pendingPages: 0,
      bandwidthBps: 1e9,
      rttMs: 0,
      wireBytesPerPage: 4096,
      throttlePercent: 0,
      nowMs: now,
    });
    for (let w = 0; w < windowsMs.length; w++) {
      const d = windowsMs[w];
      if (now + d > rounds.at(-1)!.elapsedMs - t0 + 1e-6) continue;
      const actual = union(rounds, t + 1, (x) => x.elapsedMs - t0 <= now + d + 1e-6);
      const last = predictor === "last-value"
        ? unionBack(rounds, t, (x) => x.elapsedMs - t0 > now - d + 1e-6)
        : undefined;
      let real = 0, predicted = 0;
      const a = acc[w];
      for (const h of history.mappings.values()) {
        const act = actual.get(h.id), prev = last?.get(h.id);
        for (let page = 0; page < h.pages; page++) {
          const p = prev ? prev[page] ?? 0 : view?.willRedirtyWithin?.(h.id, page, d) ?? 0;
          const isDirty = act !== undefined && act[page] === 1;
          if (isDirty) real++;
          predicted += p;
          const yes = p >= 0.5;
          if (yes && isDirty) a.tp++;
          else if (yes) a.fp++;
          else if (isDirty) a.fn++;
        }
      }
      if (real > 0) a.ape.push(Math.abs(predicted - real) / real);
    }
  }
  return windowsMs.map((windowMs, w) => {
    const { tp, fp, fn, ape } = acc[w];
    const precision = tp + fp > 0 ? tp / (tp + fp) : 0;
    const recall = tp + fn > 0 ? tp / (tp + fn) : 0;
    const sorted = ape.sort((x, y) => x - y);
    const mid = sorted.length >> 1;
    return {
      windowMs,
      f1: precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0,
      precision,
      recall,
      countApeMedian: sorted.length === 0
        ? NaN
        : sorted.length % 2
        ? sorted[mid]
        : (sorted[mid - 1] + sorted[mid]) / 2,
      points: sorted.length,
    };
  });
}

/** Marks (1 per page) of the pages written in rounds from `from` on, while `keep` holds. */
function union(
  rounds: Trace["rounds"],
  from: number,
  keep: (r: Trace["rounds"][number]) => boolean,
): Map<number, Uint8Array> {
  const out = new Map<number, Uint8Array>();
  for (let i = from; i < rounds.length && keep(rounds[i]); i++) mark(out, rounds[i].dirty);
  return out;
}

/** Marks of the pages written in rounds from `from` back, while `keep` holds (round 0 excluded). */
function unionBack(
  rounds: Trace["rounds"],
  from: number,
  keep: (r: Trace["rounds"][number]) => boolean,
): Map<number, Uint8Array> {
  const out = new Map<number, Uint8Array>();
  for (let i = from; i >= 1 && keep(rounds[i]); i--) mark(out, rounds[i].dirty);
  return out;
}

function mark(out: Map<number, Uint8Array>, dirty: Map<number, Uint32Array>): void {
  for (const [id, pages] of dirty) {
    if (pages.length === 0) continue;
    let m = out.get(id);
    const need = pages[pages.length - 1] + 1;
    if (!m || m.length < need) {
      const bigger = new Uint8Array(Math.max(need, m?.length ?? 0));
      if (m) bigger.set(m);
      out.set(id, m = bigger);
    }
    for (let i = 0; i < pages.length; i++) m[pages[i]] = 1;
  }
}
