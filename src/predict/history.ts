/**
 * Per-page dirty-bit and access-bit histories built from tracker rounds, one bit per round packed
 * in a `Uint32Array` per mapping (bit 0 = the latest round), plus the round's system features,
 * normalised. Mappings that appear get fresh (all-clean) histories; mappings that vanish are
 * dropped. Round 0 (the baseline scan, which reports every resident page) sets no bits.
 *
 * @module
 */
import type { Mapping, PageSet } from "../tracker/types.ts";

/** Longest history a page keeps, in rounds (bits of a `Uint32`). */
export const MAX_HISTORY = 32;

/** Channels per time step written by {@linkcode writeWindow}. */
export const CHANNELS = 5;

/** The history of one mapping's pages. */
export interface MappingHistory {
  /** Tracker mapping id. */
  id: number;
  /** Pages in the mapping. */
  pages: number;
  /** Dirty bits per page, bit k = dirty k rounds ago (bit 0 = latest round). */
  dirty: Uint32Array;
  /** Access bits per page, same layout; all zero when the trace has none. */
  access: Uint32Array;
  /** Rounds this mapping has been observed. */
  age: number;
  /** Per page, the history's clock (ms) at the end of the interval it was last written in; NaN = never. */
  lastWriteMs: Float64Array;
  /** Per page, intervals it was written in since the mapping appeared. */
  writes: Uint32Array;
  /** The history's clock (ms) when the mapping appeared. */
  bornMs: number;
}

/** What {@linkcode PageHistory.observe} needs from a round (a `TraceRound` fits). */
export interface RoundInput {
  /** Round number; round 0 sets no bits. */
  round: number;
  /** Mappings that appeared before this round. */
  added: Mapping[];
  /** Ids of mappings that vanished before this round. */
  removed: number[];
  /** Pages written since the previous round. */
  dirty: PageSet;
  /** Pages referenced since the previous round, when recorded. */
  accessed?: PageSet;
  /** Feature values (NaN where unavailable). */
  features: ArrayLike<number>;
  /**
   * Length of the interval this round covers, in ms (a live pre-copy round lasts as long as it
   * took); when absent, the difference of `elapsedMs` to the previous round, else 100.
   */
  intervalMs?: number;
  /** Time of the round since tracing started, in ms (trace rounds carry it). */
  elapsedMs?: number;
}

/**
 * Normalise one feature value: sign-preserving log1p scaled to about [-1, 1]; NaN becomes 0.
 *
 * @param v raw feature value (a per-round increase or a gauge)
 */
export function normaliseFeature(v: number): number {
  if (!Number.isFinite(v)) return 0;
  return Math.sign(v) * Math.log1p(Math.abs(v)) / 25;
}

/** Rolling per-page histories of one traced process tree. */
export class PageHistory {
  /** Histories by mapping id, in insertion order. */
  readonly mappings: Map<number, MappingHistory> = new Map();
  /** Normalised features of the latest round. */
  features: Float32Array;
  /** Rounds observed. */
  rounds = 0;
  /** The history's clock: ms of workload time observed (the sum of the rounds' intervals). */
  nowMs = 0;
  /** Length of the latest round's interval in ms. */
  lastIntervalMs = 0;
  #lastElapsed?: number;

  /**
   * @param pageSize bytes per page
   * @param featureCount number of feature values per round
   */
  constructor(readonly pageSize: number, readonly featureCount: number) {
    this.features = new Float32Array(featureCount);
  }

  /**
   * Feed one round: apply mapping changes, shift every history by one round, set the new bits.
   *
   * @param round the round (mapping changes, dirty and access sets, features)
   */
  observe(round: RoundInput): void {
    const dt = round.round === 0 ? 0 : round.intervalMs ??
      (round.elapsedMs !== undefined && this.#lastElapsed !== undefined
        ? Math.max(0, round.elapsedMs - this.#lastElapsed)
        : 100);
    if (round.elapsedMs !== undefined) this.#lastElapsed = round.elapsedMs;
    this.nowMs += dt;
    this.lastIntervalMs = dt;
    for (const id of round.removed) this.mappings.delete(id);
    for (const m of round.added) {
      const pages = Math.max(0, Math.ceil((m.end - m.start) / this.pageSize));
      this.mappings.set(m.id, {
        id: m.id,
        pages,
        dirty: new Uint32Array(pages),
        access: new Uint32Array(pages),
        age: 0,
        lastWriteMs: new Float64Array(pages).fill(NaN),
        writes: new Uint32Array(pages),
        bornMs: this.nowMs - dt,
      });
    }
    const setBits = round.round > 0;
    for (const h of this.mappings.values()) {
      shift(h.dirty);
      shift(h.access);
      h.age++;
      if (!setBits) continue;
      markWrites(h, round.dirty.get(h.id), this.nowMs);
      markPages(h.access, round.accessed?.get(h.id));
    }
    for (let i = 0; i < this.featureCount; i++) {
      this.features[i] = normaliseFeature(round.features[i] ?? NaN);
    }
    this.rounds++;
  }

  /** Total pages over all live mappings. */
  totalPages(): number {
    let n = 0;
    for (const h of this.mappings.values()) n += h.pages;
    return n;
  }

  /** Bytes held by the histories (for the memory goal). */
  stateBytes(): number {
    let n = this.features.byteLength;
    for (const h of this.mappings.values()) {
      n += h.dirty.byteLength + h.access.byteLength + h.lastWriteMs.byteLength +
        h.writes.byteLength;
    }
    return n;
  }
}

function shift(bits: Uint32Array): void {
  for (let i = 0; i < bits.length; i++) bits[i] = bits[i] << 1;
}

function markWrites(h: MappingHistory, pages: Uint32Array | undefined, nowMs: number): void {
  if (!pages) return;
  const bits = h.dirty;
  for (let i = 0; i < pages.length; i++) {
    const p = pages[i];
    if (p >= bits.length) continue;
    bits[p] |= 1;
    h.lastWriteMs[p] = nowMs;
    h.writes[p]++;
  }
}

function markPages(bits: Uint32Array, pages: Uint32Array | undefined): void {
  if (!pages) return;
  for (let i = 0; i < pages.length; i++) {
    const p = pages[i];
    if (p < bits.length) bits[p] |= 1;
  }
}

/**
 * Write one page's model input into `out` at `offset`: `window` time steps (oldest first) of
 * {@linkcode CHANNELS} channels each — the page's dirty bit, the mean dirty bit of its neighbours
 * within `radius` pages, its access bit, the neighbours' mean access bit, and 1 when the mapping
 * already existed at that step (0 = before it appeared: "unknown", not "clean").
 *
 * @param h the page's mapping history
 * @param page page index within the mapping
 * @param window time steps (≤ {@linkcode MAX_HISTORY})
 * @param radius neighbours on each side
 * @param out destination
 * @param offset first element to write
 */
export function writeWindow(
  h: MappingHistory,
  page: number,
  window: number,
  radius: number,
  out: Float32Array,
  offset: number,
): void {
  const lo = Math.max(0, page - radius);
  const hi = Math.min(h.pages - 1, page + radius);
  const nCount = hi - lo;
  const own = h.dirty[page];
  const ownA = h.access[page];
  const age = h.age;
  for (let t = 0; t < window; t++) {
    const bit = window - 1 - t; // oldest first
    let nd = 0, na = 0;
    for (let q = lo; q <= hi; q++) {
      if (q === page) continue;
      nd += (h.dirty[q] >>> bit) & 1;
      na += (h.access[q] >>> bit) & 1;
    }
    const o = offset + t * CHANNELS;
    out[o] = (own >>> bit) & 1;
    out[o + 1] = nCount > 0 ? nd / nCount : 0;
    out[o + 2] = (ownA >>> bit) & 1;
    out[o + 3] = nCount > 0 ? na / nCount : 0;
    out[o + 4] = bit < age ? 1 : 0;
  }
}
