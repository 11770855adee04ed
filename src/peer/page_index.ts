/**
 * A map from page address to slot number that stays fast for user-space addresses. Addresses are
 * beyond the small-integer range V8 keeps unboxed (a Map keyed by them boxes each key, on every
 * lookup), so the index splits an address into its upper 32 bits and its page number within them,
 * both small integers, and remembers the last upper half it saw (batches are runs of neighbours).
 *
 * @example
 * ```ts
 * const index = new PageIndex();
 * index.set(0x7f0000001000, 3);
 * index.get(0x7f0000001000); // 3
 * ```
 *
 * @module
 */

const HIGH = 2 ** 32;
const PAGE = 4096;

/** See the module doc. Addresses must be page-aligned, non-negative and below 2^53. */
export class PageIndex {
  #chunks = new Map<number, Map<number, number>>();
  #lastHigh = -1;
  #last: Map<number, number> | undefined;
  #size = 0;

  /** Addresses indexed. */
  get size(): number {
    return this.#size;
  }

  /** The slot of `addr`, or undefined. */
  get(addr: number): number | undefined {
    const high = Math.floor(addr / HIGH);
    return this.#chunk(high, false)?.get((addr - high * HIGH) / PAGE);
  }

  /** Whether `addr` is indexed. */
  has(addr: number): boolean {
    return this.get(addr) !== undefined;
  }

  /** Index `addr` at `slot` (replacing an earlier slot). */
  set(addr: number, slot: number): void {
    const high = Math.floor(addr / HIGH);
    const chunk = this.#chunk(high, true)!;
    const before = chunk.size;
    chunk.set((addr - high * HIGH) / PAGE, slot);
    this.#size += chunk.size - before;
  }

  /** Every indexed address, in no particular order. */
  *keys(): IterableIterator<number> {
    for (const [high, chunk] of this.#chunks) {
      for (const low of chunk.keys()) yield high * HIGH + low * PAGE;
    }
  }

  #chunk(high: number, create: boolean): Map<number, number> | undefined {
    if (high === this.#lastHigh) return this.#last;
    let chunk = this.#chunks.get(high);
    if (!chunk) {
      if (!create) return undefined;
      this.#chunks.set(high, chunk = new Map());
    }
    this.#lastHigh = high;
    this.#last = chunk;
    return chunk;
  }
}
