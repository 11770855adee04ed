/**
 * Small operations on tracker page sets (mapping id → sorted page indices).
 *
 * @module
 */
import type { PageSet } from "../tracker/types.ts";

/** Pages in `a` or `b`. */
export function unionPages(a: PageSet, b: PageSet): PageSet {
  const out: PageSet = new Map(a);
  for (const [id, pages] of b) {
    const have = out.get(id);
    out.set(id, have ? mergeSorted(have, pages) : pages);
  }
  return out;
}

/** Pages in `a` but not in `b`. */
export function subtractPages(a: PageSet, b: PageSet | undefined): PageSet {
  if (!b || b.size === 0) return a;
  const out: PageSet = new Map();
  for (const [id, pages] of a) {
    const drop = b.get(id);
    if (!drop) {
      out.set(id, pages);
      continue;
    }
    const keep: number[] = [];
    let j = 0;
    for (const p of pages) {
      while (j < drop.length && drop[j] < p) j++;
      if (j >= drop.length || drop[j] !== p) keep.push(p);
    }
    if (keep.length) out.set(id, Uint32Array.from(keep));
  }
  return out;
}

function mergeSorted(a: Uint32Array, b: Uint32Array): Uint32Array {
  const out = new Uint32Array(a.length + b.length);
  let i = 0, j = 0, n = 0;
  while (i < a.length || j < b.length) {
    const v = j >= b.length || (i < a.length && a[i] <= b[j]) ? a[i++] : b[j++];
    if (n === 0 || out[n - 1] !== v) out[n++] = v;
  }
  return out.slice(0, n);
}
