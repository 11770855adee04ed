/**
 * The prediction hook of the simulator (and of engines): a provider is fed every tracker sample
 * and hands out a {@linkcode PredictionView} when a policy decides. Two built-in providers: a
 * moving-window per-page frequency model, and a perfect one reading the trace's future.
 *
 * @module
 */
import type { PredictionView } from "../policy/types.ts";
import { type DirtySample, pageKey, pageSetKeys, type TraceTimeline } from "./timeline.ts";

/** What a provider needs to know about the decision it is asked about. */
export interface ViewContext {
  /** Pages the next round would send. */
  pendingPages: number;
  /** Bandwidth estimate in bytes/s. */
  bandwidthBps: number;
  /** Round-trip time in ms. */
  rttMs: number;
  /** Wire bytes per page. */
  wireBytesPerPage: number;
  /** Current throttle in percent. */
  throttlePercent: number;
  /** Trace (workload) time now, in ms since tracing started. */
  nowMs: number;
}

/**
 * The hook for predictors: `observe` every tracker sample in order, `view` whenever a policy
 * decides. The ONNX predictor plugs in here.
 */
export interface PredictionProvider {
  /** Feed one tracker sample. */
  observe(sample: DirtySample): void;
  /** The prediction for the rounds to come (model-backed providers answer asynchronously). */
  view(ctx: ViewContext): PredictionView | Promise<PredictionView>;
}

/**
 * Probability that a page written in a fraction `q` of the recorded intervals is written within
 * `n` intervals (n may be fractional): whole intervals independently, and a partial interval of
 * fraction f pro rata (q·f) — the same model the simulator replays traces with.
 *
 * @param q per-interval write probability
 * @param n intervals (≥ 0)
 */
export function writtenWithin(q: number, n: number): number {
  if (n <= 0 || q <= 0) return 0;
  const whole = Math.floor(n);
  return 1 - Math.pow(1 - q, whole) * (1 - q * (n - whole));
}

/** Duration in ms of a round sending `pages`. */
function roundMs(pages: number, ctx: ViewContext): number {
  return pages * ctx.wireBytesPerPage / ctx.bandwidthBps * 1000 + ctx.rttMs;
}

/**
 * A per-page frequency model over the last `window` samples: a page written in c of them is
 * written in an interval with probability q = c/window, independently; a round of n intervals
 * writes it with probability {@linkcode writtenWithin}(q, n). Summed over pages, that is the
 * expected dirty count.
 */
export class MovingWindowProvider implements PredictionProvider {
  readonly #window: number;
  readonly #horizon: number;
  readonly #samples: number[][] = [];
  readonly #counts = new Map<number, number>();
  #intervalMs = 100;

  /**
   * @param window samples remembered @default 20
   * @param horizon rounds predicted @default 3
   */
  constructor(window = 20, horizon = 3) {
    this.#window = window;
    this.#horizon = horizon;
  }

  /** Feed one tracker sample. */
  observe(sample: DirtySample): void {
    if (sample.intervalMs <= 0) return; // the baseline: nothing written yet
    const keys = pageSetKeys(sample.dirty);
    this.#intervalMs = sample.intervalMs > 0 ? sample.intervalMs : this.#intervalMs;
    this.#samples.push(keys);
    for (const k of keys) this.#counts.set(k, (this.#counts.get(k) ?? 0) + 1);
    if (this.#samples.length > this.#window) {
      for (const k of this.#samples.shift()!) {
        const c = this.#counts.get(k)! - 1;
        if (c === 0) this.#counts.delete(k);
        else this.#counts.set(k, c);
      }
    }
  }

  /** The prediction for the rounds to come. */
  view(ctx: ViewContext): PredictionView {
    const w = Math.max(1, this.#samples.length);
    const hist = new Map<number, number>();
    for (const c of this.#counts.values()) hist.set(c, (hist.get(c) ?? 0) + 1);
    const interval = this.#intervalMs;
    const written = (ms: number): number => {
      const n = Math.max(0, ms / interval);
      let sum = 0;
      for (const [c, pages] of hist) sum += pages * writtenWithin(c / w, n);
      return sum;
    };
    const chain = (throttle: number): number[] => {
      const out: number[] = [];
      let pending = ctx.pendingPages;
      for (let h = 0; h < this.#horizon; h++) {
        pending = written(roundMs(pending, ctx) * (1 - throttle / 100));
        out.push(pending);
      }
      return out;
    };
    const firstRoundN = roundMs(ctx.pendingPages, ctx) * (1 - ctx.throttlePercent / 100) /
      interval;
    const counts = this.#counts;
    return {
      horizon: this.#horizon,
      expectedDirty: chain(ctx.throttlePercent),
      willRedirty: (m, p, h) => {
        const c = counts.get(pageKey(m, p)) ?? 0;
        return writtenWithin(c / w, firstRoundN * h);
      },
      willRedirtyWithin: (m, p, ms) => {
        const c = counts.get(pageKey(m, p)) ?? 0;
        return writtenWithin(c / w, ms / interval);
      },
      expectedDirtyThrottled: (percent) => Math.min(...chain(percent)),
    };
  }
}

/**
 * A perfect predictor for the oracle: reads the trace's future from the timeline. Its view is
 * exact for the next round (up to the pro-rata split of partial intervals).
 */
export class FutureProvider implements PredictionProvider {
  readonly #timeline: TraceTimeline;
  readonly #horizon: number;

  /**
   * @param timeline the trace being replayed
   * @param horizon rounds predicted @default 3
   */
  constructor(timeline: TraceTimeline, horizon = 3) {
    this.#timeline = timeline;
    this.#horizon = horizon;
  }

  /** Ignored: the future is already known. */
  observe(_sample: DirtySample): void {}

  /** The exact future of the rounds to come, if pre-copy continues. */
  view(ctx: ViewContext): PredictionView {
    const chain = (throttle: number): number[] => {
      const out: number[] = [];
      let pending = ctx.pendingPages;
      let t = ctx.nowMs;
      for (let h = 0; h < this.#horizon; h++) {
        const d = roundMs(pending, ctx) * (1 - throttle / 100);
        pending = this.#timeline.dirtyBetween(t, t + d).size;
        t += d;
        out.push(pending);
      }
      return out;
    };
    const d1 = roundMs(ctx.pendingPages, ctx) * (1 - ctx.throttlePercent / 100);
    const next = this.#timeline.dirtyBetween(ctx.nowMs, ctx.nowMs + d1);
    const within = new Map<number, Set<number>>();
    return {
      horizon: this.#horizon,
      expectedDirty: chain(ctx.throttlePercent),
      willRedirty: (m, p) => next.has(pageKey(m, p)) ? 1 : 0,
      willRedirtyWithin: (m, p, ms) => {
        let set = within.get(ms);
        if (!set) within.set(ms, set = this.#timeline.dirtyBetween(ctx.nowMs, ctx.nowMs + ms));
        return set.has(pageKey(m, p)) ? 1 : 0;
      },
      expectedDirtyThrottled: (percent) => Math.min(...chain(percent)),
    };
  }
}
