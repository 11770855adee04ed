/**
 * Online window rates: the container's own write hazard per page class, so that the chance of a
 * page being written within a window of any length (a pre-copy round of d ms, or the rounds after
 * it) follows from the classes it passes through.
 *
 * A page's class is (time since its last write, in log₂ buckets of 100 ms; its long-run write
 * share: never, or log₂ buckets of writes per 100 ms of its mapping's life up to that last write,
 * so that the share stays put while the since-last-write clock runs). For every class the
 * rates count the page-intervals spent in it, their workload time (exposure) and the writes that
 * ended them; with q = writes / page-intervals and Δ the mean interval, the hazard is
 * −ln(1 − q) / Δ (a page written in every interval has an infinite one). A page of class (s₀, r) stays unwritten over the next d ms with
 * probability exp(−∫ λ(bucket(s), r) ds) for s from s₀ to s₀ + d — its since-last-write clock
 * runs on through the buckets. Only the container's past is used: an interval is learned from
 * once it was observed.
 *
 * @module
 */
import type { PageHistory } from "./history.ts";

/** Since-last-write buckets: [2^b − 1, 2^(b+1) − 1) units of 100 ms, the last one open. */
export const SINCE_BUCKETS = 12;
/** Long-run share buckets: 0 = never written, 1 + b for shares in (2^−(b+1), 2^−b]. */
export const SHARE_BUCKETS = 8;
/** The time unit of the buckets, in ms. */
export const UNIT_MS = 100;

/** The since-last-write bucket of `sinceMs`. */
export function sinceBucket(sinceMs: number): number {
  const u = Math.max(0, sinceMs / UNIT_MS);
  return Math.min(SINCE_BUCKETS - 1, 31 - Math.clz32(Math.floor(1 + u)));
}

/** Start of a since bucket in ms. */
function bucketStartMs(b: number): number {
  return ((1 << b) - 1) * UNIT_MS;
}

/** The share bucket of a page written `writes` times over `lifeMs` of its mapping. */
export function shareBucket(writes: number, lifeMs: number): number {
  if (writes === 0) return 0;
  // floor(−log₂ share) = floor(log₂ (life / (unit · writes))) for a share ≤ 1.
  const x = Math.floor(lifeMs / (UNIT_MS * writes));
  return x < 1 ? 1 : 1 + Math.min(SHARE_BUCKETS - 2, 31 - Math.clz32(x));
}

/** The class of a page now: `share * SINCE_BUCKETS + since`. */
export function pageClass(h: PageHistory, id: number, page: number): number {
  const m = h.mappings.get(id)!;
  const last = m.lastWriteMs[page];
  const since = Number.isNaN(last) ? h.nowMs - m.bornMs : h.nowMs - last;
  const share = shareBucket(m.writes[page], last - m.bornMs + UNIT_MS);
  return share * SINCE_BUCKETS + sinceBucket(since);
}

/** Per-class exposure and writes, learned online. */
export class WindowRates {
  /** Workload ms spent by pages in each class. */
  readonly exposureMs: Float64Array = new Float64Array(SINCE_BUCKETS * SHARE_BUCKETS);
  /** Intervals of each class that ended in a write. */
  readonly writes: Float64Array = new Float64Array(SINCE_BUCKETS * SHARE_BUCKETS);
  /** Page-intervals observed in each class. */
  readonly intervals: Float64Array = new Float64Array(SINCE_BUCKETS * SHARE_BUCKETS);

  /**
   * Learn from the round about to be observed: call BEFORE `history.observe(round)`, with the
   * round's dirty pages and interval. Every page of a mapping the history already has was in its
   * current class for `intervalMs`; the written ones ended it.
   *
   * @param history the page histories, not yet updated with the round
   * @param dirty the round's dirty pages (sorted per mapping)
   * @param intervalMs the round's interval in ms
   */
  learn(history: PageHistory, dirty: Map<number, Uint32Array>, intervalMs: number): void {
    if (!(intervalMs > 0)) return;
    const now = history.nowMs;
    const expo = this.exposureMs, wr = this.writes;
    const counts = new Float64Array(SINCE_BUCKETS * SHARE_BUCKETS);
    for (const m of history.mappings.values()) {
      const life = now - m.bornMs;
      const list = dirty.get(m.id);
      let j = 0;
      const lifeBucket = sinceBucket(life);
      for (let p = 0; p < m.pages; p++) {
        const last = m.lastWriteMs[p];
        const w = m.writes[p];
        const c = w === 0
          ? lifeBucket
          : shareBucket(w, last - m.bornMs + UNIT_MS) * SINCE_BUCKETS + sinceBucket(now - last);
        counts[c]++;
        if (list) {
          while (j < list.length && list[j] < p) j++;
          if (j < list.length && list[j] === p) wr[c]++;
        }
      }
    }
    for (let c = 0; c < counts.length; c++) {
      expo[c] += counts[c] * intervalMs;
      this.intervals[c] += counts[c];
    }
  }

  /**
   * The hazard of a class per ms: its write share per interval q, shrunk towards its share
   * bucket's mean by `prior` pseudo page-intervals, as −ln(1 − q) over the mean interval.
   *
   * @param c class index
   * @param prior pseudo page-intervals of the share bucket's mean @default 10
   */
  hazard(c: number, prior = 10): number {
    const share = Math.floor(c / SINCE_BUCKETS);
    let n = 0, w = 0, e = 0;
    for (let b = 0; b < SINCE_BUCKETS; b++) {
      n += this.intervals[share * SINCE_BUCKETS + b];
      w += this.writes[share * SINCE_BUCKETS + b];
      e += this.exposureMs[share * SINCE_BUCKETS + b];
    }
    if (n === 0) return 0;
    const mean = w / n;
    const nc = this.intervals[c];
    const q = Math.min(1 - 1e-9, (this.writes[c] + prior * mean) / (nc + prior));
    const dt = nc > 0 ? this.exposureMs[c] / nc : e / n;
    return -Math.log1p(-q) / dt;
  }

  /**
   * Hazard table for {@linkcode integratedHazard}: per class, writes per ms. A since bucket the
   * container has not reached yet takes the hazard of the last one it has (the clock runs past
   * what was observed: assume the page keeps behaving as it did).
   */
  table(): Float64Array {
    const out = new Float64Array(SINCE_BUCKETS * SHARE_BUCKETS);
    for (let share = 0; share < SHARE_BUCKETS; share++) {
      let carried = -1;
      for (let b = 0; b < SINCE_BUCKETS; b++) {
        const c = share * SINCE_BUCKETS + b;
        if (this.intervals[c] > 0 || carried < 0) out[c] = this.hazard(c);
        else out[c] = carried;
        if (this.intervals[c] > 0) carried = out[c];
      }
    }
    return out;
  }

  /** Bytes of state. */
  stateBytes(): number {
    return this.exposureMs.byteLength + this.writes.byteLength + this.intervals.byteLength;
  }
}

/**
 * ∫ λ over the since-last-write clock from `s0` to `s0 + d` (ms) for share bucket `share`: the
 * expected writes of a page that is not written meanwhile.
 *
 * @param table hazards from {@linkcode WindowRates.table}
 * @param share the page's share bucket
 * @param s0 its time since the last write now, ms
 * @param d window length, ms
 */
export function integratedHazard(
  table: Float64Array,
  share: number,
  s0: number,
  d: number,
): number {
  if (d <= 0) return 0;
  let sum = 0, s = s0;
  const end = s0 + d;
  let b = sinceBucket(s);
  while (s < end) {
    const next = b + 1 < SINCE_BUCKETS ? bucketStartMs(b + 1) : Infinity;
    const to = Math.min(end, next);
    sum += table[share * SINCE_BUCKETS + b] * (to - s);
    s = to;
    b++;
  }
  return sum;
}
