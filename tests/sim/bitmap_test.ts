import assert from "node:assert/strict";
import {
  andNot,
  emptyBitmap,
  forEachBit,
  hasBit,
  orInto,
  PageIndex,
  popcount,
  popcountAnd,
  popcountOr,
  setBit,
} from "../../src/sim/mod.ts";

Deno.test("bitmap unions, differences and counts agree with sets", () => {
  const a = emptyBitmap(100), b = emptyBitmap(100);
  for (const i of [0, 31, 32, 63, 99]) setBit(a, i);
  for (const i of [31, 64, 99]) setBit(b, i);
  assert.equal(popcount(a), 5);
  assert.equal(popcountOr(a, b), 6);
  assert.equal(popcountAnd(a, b), 2);
  const bits: number[] = [];
  forEachBit(andNot(a, b), (i) => bits.push(i));
  assert.deepEqual(bits, [0, 32, 63]);
  orInto(a, b);
  assert.ok(hasBit(a, 64) && !hasBit(a, 65));
});

Deno.test("a page index numbers pages densely and converts page sets both ways", () => {
  const ix = new PageIndex([
    new Map([[7, Uint32Array.of(5, 9)], [2, Uint32Array.of(1)]]),
    new Map([[7, Uint32Array.of(6)]]),
  ]);
  assert.equal(ix.size, 4);
  assert.equal(ix.denseOf(2, 1), 0);
  assert.equal(ix.denseOf(7, 9), 3);
  assert.equal(ix.denseOf(7, 7), -1);
  assert.equal(ix.denseOf(3, 0), -1);
  const set = new Map([[7, Uint32Array.of(6, 9)], [9, Uint32Array.of(1)]]);
  assert.deepEqual(ix.pageSetOf(ix.bitmapOf(set)), new Map([[7, Uint32Array.of(6, 9)]]));
  assert.equal(ix.idOf(2), 7);
  assert.equal(ix.pageOf(2), 6);
});
