/**
 * A trace as a timeline of dirty sets the simulator can query over arbitrary time windows.
 *
 * Pages are numbered densely ({@linkcode PageIndex}) and every set is a {@linkcode Bitmap}. Round
 * 0 of a trace is the baseline (every resident page); round i ≥ 1 holds the pages written in the
 * interval `(elapsed[i-1], elapsed[i]]`. Past the trace's end the timeline loops over rounds 1..N
 * (the workload is assumed to repeat its recorded behaviour). A window covering only a fraction f
 * of an interval takes a deterministic pseudo-random fraction f of that interval's pages.
 *
 * Unions of whole intervals come from a segment tree of interval bitmaps whose nodes are built on
 * first use and kept: a window costs O(log N) bitmap unions plus its two partial intervals,
 * whatever its length.
 *
 * @module
 */
import type { RoundInput } from "../predict/history.ts";
import type { DirtySample } from "../predict/provider.ts";
import type { Trace, TraceRound } from "../trace/types.ts";
import { type Bitmap, emptyBitmap, hasBit, orInto, popcount, setBit } from "./bitmap.ts";
import { PageIndex } from "./page_index.ts";

const SHIFT = 4294967296;

/** A deterministic hash of (page, salt) in [0, 1). */
function unitHash(id: number, page: number, salt: number): number {
  let h = page ^ Math.imul(id + 1, 0x9e3779b1) ^ Math.imul(salt + 1, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return ((h ^ (h >>> 16)) >>> 0) / SHIFT;
}

/** One recorded interval: offsets from the trace's first round, and its pages. */
interface Interval {
  start: number;
  end: number;
  /** Dense numbers of its pages. */
  dense: Uint32Array;
  round: TraceRound;
}

/** Cached window unions (the oracle and the simulator ask for the same windows). */
const CACHE = 32;

/** Queries over a trace's dirty sets in trace time (ms since the trace's round 0). */
export class TraceTimeline {
  /** Page size of the trace. */
  readonly pageSize: number;
  /** Sampling interval of the trace in ms. */
  readonly intervalMs: number;
  /** Length of one loop of the recorded intervals in ms. */
  readonly periodMs: number;
  /** Dense numbers of every page the trace mentions. */
  readonly index: PageIndex;
  readonly #baseline: Bitmap;
  readonly #intervals: Interval[];
  readonly #round0: TraceRound;
  /** Segment tree over the intervals: node 1 is the root, leaves at `#size + i`. */
  readonly #tree: (Bitmap | undefined)[];
  readonly #size: number;
  readonly #cache = new Map<string, Bitmap>();

  /** @param trace a decoded trace with at least two rounds */
  constructor(trace: Trace) {
    if (trace.rounds.length < 2) throw new RangeError("a trace needs at least two rounds");
    this.pageSize = trace.header.pageSize;
    this.intervalMs = trace.header.intervalMs;
    this.index = new PageIndex(trace.rounds.map((r) => r.dirty));
    const t0 = trace.rounds[0].elapsedMs;
    this.#baseline = this.index.bitmapOf(trace.rounds[0].dirty);
    this.#round0 = trace.rounds[0];
    this.#intervals = [];
    for (let i = 1; i < trace.rounds.length; i++) {
      const r = trace.rounds[i];
      const start = trace.rounds[i - 1].elapsedMs - t0;
      const end = Math.max(r.elapsedMs - t0, start + 1e-3);
      this.#intervals.push({ start, end, dense: this.index.denseList(r.dirty), round: r });
    }
    this.periodMs = this.#intervals.at(-1)!.end;
    let size = 1;
    while (size < this.#intervals.length) size <<= 1;
    this.#size = size;
    this.#tree = new Array(2 * size);
  }

  /** An empty bitmap over this trace's pages. */
  empty(): Bitmap {
    return emptyBitmap(this.index.size);
  }

  /** Every page resident or written at some point up to trace time `t`, as a bitmap. */
  residentBitmap(t: number): Bitmap {
    const out = this.#baseline.slice();
    const n = this.#intervals.length;
    // Occurrences are in time order; count those ending by t.
    let complete = 0;
    for (const { end } of this.#occurrences(0, t)) {
      if (end <= t) complete++;
    }
    if (complete >= n) return orInto(out, this.#node(1));
    this.#orRange(out, 0, complete);
    return out;
  }

  /** Pages written during `[a, b)`, partial intervals pro rata, as a bitmap (do not modify). */
  dirtyBitmap(a: number, b: number): Bitmap {
    const key = `${a},${b}`;
    const hit = this.#cache.get(key);
    if (hit) return hit;
    const out = this.empty();
    if (b > a) this.#dirtyInto(out, a, b);
    if (this.#cache.size >= CACHE) this.#cache.delete(this.#cache.keys().next().value!);
    this.#cache.set(key, out);
    return out;
  }

  /** Pages written during `[a, b)`: how many. */
  dirtyCount(a: number, b: number): number {
    return popcount(this.dirtyBitmap(a, b));
  }

  /** Every page resident or written up to `t`, as page keys (see `pageKey`). */
  residentAt(t: number): Set<number> {
    return this.#keys(this.residentBitmap(t));
  }

  /** Pages written during `[a, b)` as page keys, partial intervals pro rata. */
  dirtyBetween(a: number, b: number): Set<number> {
    return this.#keys(this.dirtyBitmap(a, b));
  }

  /** Whether page `page` of mapping `id` is set in `bitmap` (false for pages never seen). */
  has(bitmap: Bitmap, id: number, page: number): boolean {
    const d = this.index.denseOf(id, page);
    return d >= 0 && hasBit(bitmap, d);
  }

  /**
   * The tracker samples (whole intervals) that complete within `(a, b]`, each with its trace round
   * for predictors (renumbered, and without mapping changes, when the replay loops). A window
   * starting before 0 begins with the baseline round (interval 0 ms, nothing dirty): it brings the
   * trace's first mappings.
   */
  samplesCompleting(a: number, b: number): DirtySample[] {
    const out: DirtySample[] = [];
    if (a < 0 && b >= 0) out.push({ dirty: new Map(), intervalMs: 0, round: this.#round0 });
    const n = this.#intervals.length;
    for (const { start, end, interval, index } of this.#occurrences(a, b)) {
      if (end <= a || end > b) continue;
      const round: RoundInput = index < n
        ? interval.round
        : { ...interval.round, round: index + 1, added: [], removed: [] };
      out.push({ dirty: interval.round.dirty, intervalMs: end - start, round });
    }
    return out;
  }

  #keys(b: Bitmap): Set<number> {
    const out = new Set<number>();
    for (let i = 0; i < this.index.size; i++) {
      if (hasBit(b, i)) out.add(this.index.idOf(i) * SHIFT + this.index.pageOf(i));
    }
    return out;
  }

  #dirtyInto(out: Bitmap, a: number, b: number): void {
    const n = this.#intervals.length;
    let runStart = -1, runEnd = -1; // a run of whole occurrences [runStart, runEnd)
    const flush = () => {
      if (runStart < 0) return;
      if (runEnd - runStart >= n) orInto(out, this.#node(1));
      else {
        const lo = runStart % n, hi = lo + (runEnd - runStart);
        if (hi <= n) this.#orRange(out, lo, hi);
        else {
          this.#orRange(out, lo, n);
          this.#orRange(out, 0, hi - n);
        }
      }
      runStart = -1;
    };
    for (const { start, end, interval, index } of this.#occurrences(a, b)) {
      const overlap = Math.min(b, end) - Math.max(a, start);
      if (overlap <= 0) continue;
      const f = overlap / (end - start);
      if (f >= 1 - 1e-9) {
        if (runStart >= 0 && runEnd === index) runEnd++;
        else {
          flush();
          runStart = index;
          runEnd = index + 1;
        }
        continue;
      }
      flush();
      const { dense } = interval;
      const ix = this.index;
      for (let i = 0; i < dense.length; i++) {
        const d = dense[i];
        if (unitHash(ix.idOf(d), ix.pageOf(d), index) < f) setBit(out, d);
      }
    }
    flush();
  }

  /** OR the intervals `[lo, hi)` (indices into one loop) into `out`. */
  #orRange(out: Bitmap, lo: number, hi: number): void {
    let l = lo + this.#size, r = hi + this.#size;
    while (l < r) {
      if (l & 1) orInto(out, this.#node(l++));
      if (r & 1) orInto(out, this.#node(--r));
      l >>>= 1;
      r >>>= 1;
    }
  }

  /** A segment-tree node's union, built on first use. */
  #node(i: number): Bitmap {
    const hit = this.#tree[i];
    if (hit) return hit;
    let b: Bitmap;
    if (i >= this.#size) {
      b = this.empty();
      const iv = this.#intervals[i - this.#size];
      if (iv) { for (const d of iv.dense) setBit(b, d); }
    } else {
      b = this.#node(2 * i).slice();
      orInto(b, this.#node(2 * i + 1));
    }
    this.#tree[i] = b;
    return b;
  }

  /** Interval occurrences (with looping) overlapping `[a, b]`, in time order. */
  *#occurrences(a: number, b: number) {
    const n = this.#intervals.length;
    const first = Math.max(0, Math.floor(a / this.periodMs));
    const last = Math.floor(b / this.periodMs);
    for (let loop = first; loop <= last; loop++) {
      const base = loop * this.periodMs;
      // Skip the intervals of this loop that end before a (binary search).
      let i = 0;
      if (base + this.#intervals[n - 1].end >= a) {
        let lo = 0, hi = n - 1;
        while (lo < hi) {
          const mid = (lo + hi) >>> 1;
          if (base + this.#intervals[mid].end < a) lo = mid + 1;
          else hi = mid;
        }
        i = lo;
      } else i = n;
      for (; i < n; i++) {
        const iv = this.#intervals[i];
        const start = base + iv.start;
        const end = base + iv.end;
        if (end < a) continue;
        if (start > b) return;
        yield { start, end, interval: iv, index: loop * n + i };
      }
    }
  }
}
