/**
 * Online pattern frequencies: how often, in this container's own past rounds, a phase-1-unstable
 * page with a given recent pattern was dirty 1, 2, 3 rounds later. Phase 2 blends them with the
 * offline model: `p = (dirty[k] + prior · p_model) / (seen[k] + prior)` — the model's probability
 * counts as `prior` pseudo-observations, so it decides for patterns the container has not shown
 * yet, and the container's own behaviour takes over as it accumulates. Only past rounds are used:
 * the outcome of a page-round at step `h` is learned `h` rounds later.
 *
 * The pattern key of a page: its last 8 dirty bits and how many of its two adjacent pages were
 * dirty in the latest round ({@linkcode PATTERN_KEYS} keys).
 *
 * @module
 */
import type { MappingHistory, PageHistory } from "./history.ts";
import { isStable, type Phase1Params } from "./phase1.ts";

/** Own dirty bits in a pattern key. */
export const PATTERN_BITS = 8;

/** Number of distinct pattern keys. */
export const PATTERN_KEYS = 3 << PATTERN_BITS;

/**
 * The pattern key of `page` as it was `lag` rounds ago.
 *
 * @param h the page's mapping history
 * @param page page index
 * @param lag rounds back (0 = latest)
 */
export function patternKey(h: MappingHistory, page: number, lag: number): number {
  const own = (h.dirty[page] >>> lag) & ((1 << PATTERN_BITS) - 1);
  let nb = 0;
  if (page > 0) nb += (h.dirty[page - 1] >>> lag) & 1;
  if (page + 1 < h.pages) nb += (h.dirty[page + 1] >>> lag) & 1;
  return own * 3 + nb;
}

/** Per-key counts of unstable page-rounds and of those dirty `h` rounds later. */
export class PatternFrequencies {
  /** Unstable page-rounds seen per horizon step and key (`s * PATTERN_KEYS + key`). */
  readonly seen: Float64Array;
  /** Of those, dirty `s + 1` rounds later. */
  readonly dirty: Float64Array;

  /**
   * @param horizon steps to learn
   * @param phase1 the stability test that routes pages to phase 2
   */
  constructor(readonly horizon: number, readonly phase1: Phase1Params) {
    this.seen = new Float64Array(horizon * PATTERN_KEYS);
    this.dirty = new Float64Array(horizon * PATTERN_KEYS);
  }

  /**
   * Learn from the round just observed (call after `history.observe`): for every page that was
   * unstable `s + 1` rounds ago, count its key then and whether it is dirty now.
   *
   * @param history the page histories, latest round included
   */
  learn(history: PageHistory): void {
    const H = this.horizon, p1 = this.phase1;
    const quiet = (1 << Math.min(31, H + p1.k)) - 1;
    for (const h of history.mappings.values()) {
      const old = h.age > H + p1.k; // every lagged state fully observed
      for (let page = 0; page < h.pages; page++) {
        const bits = h.dirty[page];
        // clean for the last H + k rounds: stable (all-zero) at every lag and not dirty now
        if (old && (bits & quiet) === 0) continue;
        const now = bits & 1;
        for (let s = 0; s < H; s++) {
          const lag = s + 1;
          const age = h.age - lag;
          if (age < 1 || isStable(bits >>> lag, p1, age)) continue;
          const i = s * PATTERN_KEYS + patternKey(h, page, lag);
          this.seen[i]++;
          this.dirty[i] += now;
        }
      }
    }
  }

  /**
   * Blend a model probability with the counts of `key` at step `s`.
   *
   * @param s horizon step, 0-based
   * @param key pattern key
   * @param pModel the model's probability
   * @param prior pseudo-observations the model's probability is worth
   */
  blend(s: number, key: number, pModel: number, prior: number): number {
    const i = s * PATTERN_KEYS + key;
    const n = this.seen[i] + prior;
    return n > 0 ? (this.dirty[i] + prior * pModel) / n : pModel;
  }

  /**
   * Whether `key` has been seen at least `evidence` times at every step: then the model's part of
   * {@linkcode blend} is at most `prior / (evidence + prior)` and the caller may skip the model.
   *
   * @param key pattern key
   * @param evidence page-rounds needed
   */
  settled(key: number, evidence: number): boolean {
    for (let s = 0; s < this.horizon; s++) {
      if (this.seen[s * PATTERN_KEYS + key] < evidence) return false;
    }
    return true;
  }

  /**
   * The observed dirty share of `key` at step `s` (0 when never seen).
   *
   * @param s horizon step, 0-based
   * @param key pattern key
   */
  rate(s: number, key: number): number {
    const i = s * PATTERN_KEYS + key;
    return this.seen[i] > 0 ? this.dirty[i] / this.seen[i] : 0;
  }

  /** Bytes held by the counts. */
  stateBytes(): number {
    return this.seen.byteLength + this.dirty.byteLength;
  }
}
