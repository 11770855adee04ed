/**
 * The two-phase predictor as the simulator's (and an engine's) prediction provider: every tracker
 * sample goes into the page histories; when a policy decides, one batched prediction gives each
 * page its probability of being written in each of the next H intervals, and the view turns those
 * into expected dirty counts for rounds of any length.
 *
 * Rounds are not intervals: a round lasts as long as sending its pages takes. A page with
 * per-interval probabilities p₁…p_H from the model is written within the workload time [a, b)
 * (in intervals) with probability 1 − Π (1 − p_j · overlap_j), where overlap_j is the part of
 * interval j inside [a, b) — partial intervals pro rata, as the simulator replays traces. Beyond
 * the model's horizon, p_j is the page's long-run frequency: the share of the last 16 rounds in
 * which it was written (a model trained for H steps says little about step 30 of a slow link).
 *
 * @module
 */
import type { PredictionView } from "../policy/types.ts";
import type { Predictor } from "./online.ts";
import {
  type DirtySample,
  pageKey,
  type PredictionProvider,
  type ViewContext,
} from "./provider.ts";

/** How many rounds ahead the view's expected dirty counts reach. */
const VIEW_ROUNDS = 12;

/** Per-page interval probabilities of the pages that may be written (others are 0). */
interface PageProbabilities {
  /** Candidate index of each candidate page, by {@linkcode pageKey}. */
  index: Map<number, number>;
  /** Candidate pages. */
  count: number;
  /** `horizon` probabilities per candidate page, interval by interval. */
  probs: Float32Array;
  /** Per candidate page, the per-interval probability beyond the horizon. */
  tail: Float32Array;
  /** Probabilities per page. */
  horizon: number;
}

/** Rounds of history the long-run frequency looks at. */
const TAIL_WINDOW = 16;

/** Set bits in a 32-bit word. */
function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

/**
 * Probability that a page with per-interval probabilities `p` (length `horizon`, from offset
 * `at`), then `tail` per interval, is written within intervals [a, b).
 */
function writtenBetween(
  p: Float32Array,
  at: number,
  horizon: number,
  tail: number,
  a: number,
  b: number,
): number {
  if (b <= a) return 0;
  let clean = 1;
  const first = Math.floor(a);
  for (let j = first; j < b; j++) {
    const overlap = Math.min(b, j + 1) - Math.max(a, j);
    if (overlap <= 0) continue;
    const q = j < horizon ? p[at + j] : tail;
    clean *= 1 - q * overlap;
    if (clean <= 0) return 1;
  }
  return 1 - clean;
}

/** The window-free provider: the tick model's p₁..p_H per interval, extended by the long-run frequency (how the predictor answered round windows before window predictions). */
export class TickPredictorProvider implements PredictionProvider {
  readonly #predictor: Predictor;
  #intervalMs = 100;
  #observedSinceView = true;
  #cached?: PageProbabilities;

  /** @param predictor a fresh predictor (u2c, lstm, phase1-only or last-value) */
  constructor(predictor: Predictor) {
    this.#predictor = predictor;
  }

  /** Feed one tracker sample; it must carry its trace round. */
  observe(sample: DirtySample): void {
    if (!sample.round) throw new Error("PredictorProvider needs samples with their trace round");
    if (sample.intervalMs > 0) this.#intervalMs = sample.intervalMs;
    this.#predictor.observe(sample.round);
    this.#observedSinceView = true;
  }

  /** Predict, then answer the policy's questions in round terms. */
  async view(ctx: ViewContext): Promise<PredictionView> {
    if (this.#observedSinceView || !this.#cached) {
      this.#cached = await this.#probabilities();
      this.#observedSinceView = false;
    }
    const { index, count, probs, tail, horizon } = this.#cached;
    const interval = this.#intervalMs;
    const roundIntervals = (pending: number, throttle: number) =>
      (pending * ctx.wireBytesPerPage / ctx.bandwidthBps * 1000 + ctx.rttMs) *
      (1 - throttle / 100) / interval;
    const chain = (throttle: number): number[] => {
      const out: number[] = [];
      let pending = ctx.pendingPages;
      let t = 0;
      for (let r = 0; r < VIEW_ROUNDS; r++) {
        const d = roundIntervals(pending, throttle);
        let sum = 0;
        for (let i = 0; i < count; i++) {
          sum += writtenBetween(probs, i * horizon, horizon, tail[i], t, t + d);
        }
        out.push(sum);
        pending = sum;
        t += d;
      }
      return out;
    };
    const within = (id: number, page: number, n: number) => {
      const i = index.get(pageKey(id, page));
      return i === undefined ? 0 : writtenBetween(probs, i * horizon, horizon, tail[i], 0, n);
    };
    const firstRound = roundIntervals(ctx.pendingPages, ctx.throttlePercent);
    return {
      horizon: VIEW_ROUNDS,
      expectedDirty: chain(ctx.throttlePercent),
      expectedDirtyWithin: (ms) => {
        let sum = 0;
        for (let i = 0; i < count; i++) {
          sum += writtenBetween(probs, i * horizon, horizon, tail[i], 0, ms / interval);
        }
        return sum;
      },
      willRedirty: (id, page, h) => within(id, page, firstRound * h),
      willRedirtyWithin: (id, page, ms) => within(id, page, ms / interval),
      expectedDirtyThrottled: (percent) => Math.min(...chain(percent)),
    };
  }

  /** One batched prediction, kept only for pages with a non-zero probability. */
  async #probabilities(): Promise<PageProbabilities> {
    const prediction = await this.#predictor.predict();
    const horizon = prediction.horizon;
    const index = new Map<number, number>();
    const probs: number[] = [], tail: number[] = [];
    const histories = this.#predictor.history.mappings;
    const mask = (1 << TAIL_WINDOW) - 1;
    for (const [id, perStep] of prediction.probs) {
      const n = perStep[0]?.length ?? 0;
      const h = histories.get(id);
      const seen = h ? Math.min(TAIL_WINDOW, Math.max(1, h.age - 1)) : 1;
      for (let page = 0; page < n; page++) {
        const q = h ? popcount(h.dirty[page] & mask) / seen : 0;
        let any = q > 0;
        for (let s = 0; s < horizon && !any; s++) any = perStep[s][page] > 1e-4;
        if (!any) continue;
        index.set(pageKey(id, page), tail.length);
        tail.push(Math.min(1, q));
        for (let s = 0; s < horizon; s++) probs.push(perStep[s][page]);
      }
    }
    return {
      index,
      count: tail.length,
      probs: Float32Array.from(probs),
      tail: Float32Array.from(tail),
      horizon,
    };
  }
}
