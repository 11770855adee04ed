/**
 * The perfect provider the oracle decides with: it reads the trace's future.
 *
 * @module
 */
import type { PredictionView } from "../policy/types.ts";
import {
  type DirtySample,
  type PredictionProvider,
  roundMs,
  type ViewContext,
} from "../predict/provider.ts";
import type { Bitmap } from "./bitmap.ts";
import type { TraceTimeline } from "./timeline.ts";

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
        pending = this.#timeline.dirtyCount(t, t + d);
        t += d;
        out.push(pending);
      }
      return out;
    };
    const d1 = roundMs(ctx.pendingPages, ctx) * (1 - ctx.throttlePercent / 100);
    const tl = this.#timeline;
    const next = tl.dirtyBitmap(ctx.nowMs, ctx.nowMs + d1);
    const within = new Map<number, Bitmap>();
    return {
      horizon: this.#horizon,
      expectedDirty: chain(ctx.throttlePercent),
      expectedDirtyWithin: (ms) => tl.dirtyCount(ctx.nowMs, ctx.nowMs + ms),
      willRedirty: (m, p) => tl.has(next, m, p) ? 1 : 0,
      willRedirtyWithin: (m, p, ms) => {
        let set = within.get(ms);
        if (!set) within.set(ms, set = tl.dirtyBitmap(ctx.nowMs, ctx.nowMs + ms));
        return tl.has(set, m, p) ? 1 : 0;
      },
      expectedDirtyThrottled: (percent) => Math.min(...chain(percent)),
    };
  }
}
