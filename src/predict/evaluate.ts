/**
 * Replay a trace through a predictor and score its page-level predictions against what the trace
 * shows happened next: precision, recall, F1 and accuracy of "dirty in round t+h", and the mean
 * absolute percentage error of the predicted dirty-page count (expected count), per horizon.
 *
 * @module
 */
import type { Trace } from "../trace/types.ts";
import type { PageSet } from "../tracker/types.ts";
import type { Predictor } from "./online.ts";

/** Scores of one model on one trace at one horizon step. */
export interface HorizonScore {
  /** Horizon step, 1-based. */
  horizon: number;
  /** Precision of the dirty class. */
  precision: number;
  /** Recall of the dirty class. */
  recall: number;
  /** F1 of the dirty class. */
  f1: number;
  /** Share of pages predicted right. */
  accuracy: number;
  /** Mean absolute percentage error of the predicted dirty count (rounds with ≥ 1 dirty page). */
  count_mape: number;
  /** Page predictions scored. */
  samples: number;
}

/** One row of `u2cm predict-eval --format json`: one trace, one model, one horizon step. */
export interface PredictEvalResult {
  /** Trace file. */
  trace: string;
  /** Model name. */
  model: string;
  /** Horizon step (1-based). */
  horizon: number;
  /** F1 of the dirty class. */
  f1: number;
  /** Precision of the dirty class. */
  precision: number;
  /** Recall of the dirty class. */
  recall: number;
  /** Accuracy over all pages. */
  accuracy: number;
  /** Mean absolute percentage error of the predicted dirty-page count. */
  count_mape: number;
}

/** Options of {@linkcode evaluateTrace}. */
export interface EvaluateOptions {
  /** Rounds to observe before scoring starts. @default 16 */
  warmup?: number;
  /**
   * Probability at or above which a page counts as predicted dirty.
   * @default the prediction's own `threshold` per horizon step (the model's sidecar; 0.5)
   */
  threshold?: number;
}

/**
 * Whether `page` of mapping `id` is in `set`.
 *
 * @param set a page set
 * @param id mapping id
 * @param page page index within the mapping
 */
export function inPageSet(set: PageSet, id: number, page: number): boolean {
  const a = set.get(id);
  if (!a) return false;
  let lo = 0, hi = a.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] === page) return true;
    if (a[mid] < page) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

/**
 * Replay `trace` through `predictor` and score every horizon step.
 *
 * @param trace the trace
 * @param predictor a fresh predictor
 * @param options warm-up and decision threshold
 */
export async function evaluateTrace(
  trace: Trace,
  predictor: Predictor,
  options: EvaluateOptions = {},
): Promise<HorizonScore[]> {
  const warmup = options.warmup ?? 16;
  const rounds = trace.rounds;
  let horizon = 0;
  const tp: number[] = [], fp: number[] = [], fn: number[] = [], tn: number[] = [];
  const ape: number[] = [], apeN: number[] = [];
  for (let t = 0; t < rounds.length; t++) {
    predictor.observe(rounds[t]);
    if (t < warmup) continue;
    const pred = await predictor.predict();
    if (horizon === 0) {
      horizon = pred.horizon;
      for (let s = 0; s < horizon; s++) {
        tp[s] =
          fp[s] =
          fn[s] =
          tn[s] =
          ape[s] =
          apeN[s] =
            0;
      }
    }
    for (let s = 0; s < horizon; s++) {
      const future = rounds[t + s + 1];
      if (!future) continue;
      const threshold = options.threshold ?? pred.threshold?.[s] ?? 0.5;
      let actual = 0;
      for (const [id, out] of pred.probs) {
        const probs = out[s];
        const dirty = future.dirty.get(id);
        let j = 0; // walk the sorted dirty list alongside the pages
        for (let page = 0; page < probs.length; page++) {
          let d = false;
          if (dirty) {
            while (j < dirty.length && dirty[j] < page) j++;
            d = j < dirty.length && dirty[j] === page;
          }
          const p = probs[page] >= threshold;
          if (d) actual++;
          if (p && d) tp[s]++;
          else if (p) fp[s]++;
          else if (d) fn[s]++;
          else tn[s]++;
        }
      }
      if (actual > 0) {
        ape[s] += Math.abs(pred.expectedDirty[s] - actual) / actual;
        apeN[s]++;
      }
    }
  }
  const scores: HorizonScore[] = [];
  for (let s = 0; s < horizon; s++) {
    const precision = tp[s] + fp[s] > 0 ? tp[s] / (tp[s] + fp[s]) : 0;
    const recall = tp[s] + fn[s] > 0 ? tp[s] / (tp[s] + fn[s]) : 0;
    const samples = tp[s] + fp[s] + fn[s] + tn[s];
    scores.push({
      horizon: s + 1,
      precision,
      recall,
      f1: precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0,
      accuracy: samples > 0 ? (tp[s] + tn[s]) / samples : 0,
      count_mape: apeN[s] > 0 ? ape[s] / apeN[s] : 0,
      samples,
    });
  }
  return scores;
}
