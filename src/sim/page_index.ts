/**
 * A dense numbering of every page a trace ever mentions (its baseline and every dirty set), in
 * (mapping id, page) order, so that page sets become {@linkcode Bitmap}s over one index.
 *
 * @module
 */
import type { PageSet } from "../tracker/types.ts";
import { type Bitmap, emptyBitmap, forEachBit } from "./bitmap.ts";

/** Dense page numbers of a trace's pages. */
export class PageIndex {
  /** Pages in the index. */
  readonly size: number;
  /** Mapping ids, ascending. */
  readonly #ids: number[];
  /** Per mapping (same order), its pages ascending. */
  readonly #pages: Uint32Array[];
  /** Per mapping, the dense number of its first page. */
  readonly #base: number[];
  readonly #byId = new Map<number, number>();
  readonly #idOfDense: Float64Array;
  readonly #pageOfDense: Uint32Array;

  /**
   * @param sets every page set the index must cover
   * @example
   * ```ts
   * const index = new PageIndex([new Map([[1, Uint32Array.of(3, 5)]])]);
   * index.denseOf(1, 5); // 1
   * ```
   */
  constructor(sets: Iterable<PageSet>) {
    const maxPage = new Map<number, number>();
    const all = [...sets];
    for (const s of all) {
      for (const [id, pages] of s) {
        if (pages.length === 0) continue;
        maxPage.set(id, Math.max(maxPage.get(id) ?? 0, pages[pages.length - 1]));
      }
    }
    this.#ids = [...maxPage.keys()].sort((a, b) => a - b);
    const marks = new Map<number, Uint8Array>();
    for (const id of this.#ids) marks.set(id, new Uint8Array(maxPage.get(id)! + 1));
    for (const s of all) {
      for (const [id, pages] of s) {
        const m = marks.get(id);
        if (m) { for (let i = 0; i < pages.length; i++) m[pages[i]] = 1; }
      }
    }
    this.#pages = [];
    this.#base = [];
    let n = 0;
    for (const id of this.#ids) {
      const m = marks.get(id)!;
      let count = 0;
      for (let p = 0; p < m.length; p++) count += m[p];
      const list = new Uint32Array(count);
      let j = 0;
      for (let p = 0; p < m.length; p++) if (m[p]) list[j++] = p;
      this.#byId.set(id, this.#pages.length);
      this.#pages.push(list);
      this.#base.push(n);
      n += count;
    }
    this.size = n;
    this.#idOfDense = new Float64Array(n);
    this.#pageOfDense = new Uint32Array(n);
    for (let m = 0; m < this.#ids.length; m++) {
      const base = this.#base[m], pages = this.#pages[m];
      this.#idOfDense.fill(this.#ids[m], base, base + pages.length);
      this.#pageOfDense.set(pages, base);
    }
  }

  /** The dense number of a page, or -1 when the trace never mentions it. */
  denseOf(id: number, page: number): number {
    const m = this.#byId.get(id);
    if (m === undefined) return -1;
    const a = this.#pages[m];
    let lo = 0, hi = a.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (a[mid] === page) return this.#base[m] + mid;
      if (a[mid] < page) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  /** Dense numbers of a page set's pages (pages the index lacks are dropped). */
  denseList(set: PageSet): Uint32Array {
    const out: number[] = [];
    for (const [id, pages] of set) {
      const m = this.#byId.get(id);
      if (m === undefined) continue;
      const a = this.#pages[m], base = this.#base[m];
      let j = 0;
      for (let i = 0; i < pages.length; i++) {
        const p = pages[i];
        while (j < a.length && a[j] < p) j++;
        if (j < a.length && a[j] === p) out.push(base + j);
      }
    }
    return Uint32Array.from(out);
  }

  /** A page set as a bitmap (pages the index lacks are dropped). */
  bitmapOf(set: PageSet): Bitmap {
    const b = emptyBitmap(this.size);
    const list = this.denseList(set);
    for (let i = 0; i < list.length; i++) b[list[i] >>> 5] |= 1 << (list[i] & 31);
    return b;
  }

  /** A bitmap as a page set (sorted pages per mapping). */
  pageSetOf(b: Bitmap): PageSet {
    const out: PageSet = new Map();
    let m = 0;
    let current: number[] = [];
    const flush = () => {
      if (current.length > 0) out.set(this.#ids[m], Uint32Array.from(current));
      current = [];
    };
    forEachBit(b, (i) => {
      while (m + 1 < this.#ids.length && i >= this.#base[m + 1]) {
        flush();
        m++;
      }
      current.push(this.#pages[m][i - this.#base[m]]);
    });
    flush();
    return out;
  }

  /** The mapping id of every dense number. */
  idOf(dense: number): number {
    return this.#idOfDense[dense];
  }

  /** The page index (within its mapping) of every dense number. */
  pageOf(dense: number): number {
    return this.#pageOfDense[dense];
  }
}
