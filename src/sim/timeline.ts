/**
 * A trace as a timeline of dirty sets the simulator can query over arbitrary time windows.
 *
 * Pages are keyed as `mappingId * 2^32 + pageIndex` (exact in a double). Round 0 of a trace is
 * the baseline (every resident page); round i ≥ 1 holds the pages written in the interval
 * `(elapsed[i-1], elapsed[i]]`. Past the trace's end the timeline loops over rounds 1..N (the
 * workload is assumed to repeat its recorded behaviour). A window covering only a fraction f of
 * an interval takes a deterministic pseudo-random fraction f of that interval's pages.
 *
 * @module
 */
import type { RoundInput } from "../predict/history.ts";
import type { Trace, TraceRound } from "../trace/types.ts";
import type { PageSet } from "../tracker/types.ts";

/** One tracker sample: the pages written during an interval. */
export interface DirtySample {
  /** Pages written since the previous sample. */
  dirty: PageSet;
  /** Length of the interval in milliseconds. */
  intervalMs: number;
  /** The trace round behind the sample (mapping changes, features), for predictors. */
  round?: RoundInput;
}

const SHIFT = 4294967296;

/** The key of one page. */
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

/** A deterministic hash of (key, salt) in [0, 1). */
function unitHash(key: number, salt: number): number {
  let h = (key % SHIFT) ^ Math.imul(Math.floor(key / SHIFT) + 1, 0x9e3779b1) ^
    Math.imul(salt + 1, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return ((h ^ (h >>> 16)) >>> 0) / SHIFT;
}

/** One recorded interval: offsets from the trace's first round, and its pages. */
interface Interval {
  start: number;
  end: number;
  keys: number[];
  set: PageSet;
  round: TraceRound;
}

/** Queries over a trace's dirty sets in trace time (ms since the trace's round 0). */
export class TraceTimeline {
  /** Page size of the trace. */
  readonly pageSize: number;
  /** Sampling interval of the trace in ms. */
  readonly intervalMs: number;
  /** Length of one loop of the recorded intervals in ms. */
  readonly periodMs: number;
  readonly #baseline: number[];
  readonly #intervals: Interval[];
  readonly #round0: TraceRound;

  /** @param trace a decoded trace with at least two rounds */
  constructor(trace: Trace) {
    if (trace.rounds.length < 2) throw new RangeError("a trace needs at least two rounds");
    this.pageSize = trace.header.pageSize;
    this.intervalMs = trace.header.intervalMs;
    const t0 = trace.rounds[0].elapsedMs;
    this.#baseline = pageSetKeys(trace.rounds[0].dirty);
    this.#round0 = trace.rounds[0];
    this.#intervals = [];
    for (let i = 1; i < trace.rounds.length; i++) {
      const r = trace.rounds[i];
      const start = trace.rounds[i - 1].elapsedMs - t0;
      const end = Math.max(r.elapsedMs - t0, start + 1e-3);
      this.#intervals.push({ start, end, keys: pageSetKeys(r.dirty), set: r.dirty, round: r });
    }
    this.periodMs = this.#intervals.at(-1)!.end;
  }

  /** Every page resident or written at some point up to trace time `t`. */
  residentAt(t: number): Set<number> {
    const out = new Set(this.#baseline);
    for (const iv of this.#occurrences(0, t)) {
      if (iv.end <= t) { for (const k of iv.interval.keys) out.add(k); }
    }
    return out;
  }

  /** Pages written during `[a, b)`, partial intervals pro rata. */
  dirtyBetween(a: number, b: number): Set<number> {
    const out = new Set<number>();
    if (b <= a) return out;
    for (const { start, end, interval, index } of this.#occurrences(a, b)) {
      const overlap = Math.min(b, end) - Math.max(a, start);
      if (overlap <= 0) continue;
      const f = overlap / (end - start);
      if (f >= 1 - 1e-9) { for (const k of interval.keys) out.add(k); }
      else for (const k of interval.keys) if (unitHash(k, index) < f) out.add(k);
    }
    return out;
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
      out.push({ dirty: interval.set, intervalMs: end - start, round });
    }
    return out;
  }

  /** Interval occurrences (with looping) overlapping `[a, b]`, in time order. */
  *#occurrences(a: number, b: number) {
    const n = this.#intervals.length;
    const first = Math.max(0, Math.floor(a / this.periodMs));
    const last = Math.floor(b / this.periodMs);
    for (let loop = first; loop <= last; loop++) {
      const base = loop * this.periodMs;
      for (let i = 0; i < n; i++) {
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
