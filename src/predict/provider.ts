/**
 * The prediction hook of the engines and the simulator: a provider is fed every tracker sample
 * and hands out a {@linkcode PredictionView} when a policy decides.
 *
 * @module
 */
import type { PredictionView } from "../policy/types.ts";
import type { PageSet } from "../tracker/types.ts";
import type { RoundInput } from "./history.ts";

/** One tracker sample: the pages written during an interval. */
export interface DirtySample {
  /** Pages written since the previous sample. */
  dirty: PageSet;
  /** Length of the interval in milliseconds. */
  intervalMs: number;
  /** The trace round behind the sample (mapping changes, features), for predictors. */
  round?: RoundInput;
}

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

const SHIFT = 4294967296;

/**
 * The key of one page: `mappingId · 2³² + pageIndex` (exact in a double).
 *
 * @example
 * ```ts
 * pageKey(1, 5); // 4294967301
 * ```
 */
export function pageKey(mappingId: number, pageIndex: number): number {
  return mappingId * SHIFT + pageIndex;
}

/** Convert a page set to keys. */
export function pageSetKeys(set: PageSet): number[] {
  const out: number[] = [];
  for (const [id, pages] of set) for (const p of pages) out.push(id * SHIFT + p);
  return out;
}

/** Convert keys back to a page set (sorted, distinct). */
export function keysToPageSet(keys: Iterable<number>): PageSet {
  const byId = new Map<number, number[]>();
  for (const k of keys) {
    const id = Math.floor(k / SHIFT);
    let list = byId.get(id);
    if (!list) byId.set(id, list = []);
    list.push(k - id * SHIFT);
  }
  const out: PageSet = new Map();
  for (const [id, list] of byId) out.set(id, Uint32Array.from(list).sort());
  return out;
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
export function roundMs(pages: number, ctx: ViewContext): number {
  return pages * ctx.wireBytesPerPage / ctx.bandwidthBps * 1000 + ctx.rttMs;
}
