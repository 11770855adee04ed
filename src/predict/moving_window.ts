/**
 * The model-free provider: a moving window of per-page write frequencies (what the engine uses
 * when no model is loaded).
 *
 * @module
 */
import type { PredictionView } from "../policy/types.ts";
import {
  type DirtySample,
  pageKey,
  pageSetKeys,
  type PredictionProvider,
  roundMs,
  type ViewContext,
  writtenWithin,
} from "./provider.ts";

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
      expectedDirtyWithin: written,
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
