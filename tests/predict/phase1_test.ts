import assert from "node:assert/strict";
import { dataShift, DEFAULT_PHASE1, isStable } from "../../src/predict/mod.ts";

Deno.test("with k 3 and CV 0.5 a page is stable only when its last three bits agree", () => {
  assert.equal(isStable(0b000, DEFAULT_PHASE1), true);
  assert.equal(isStable(0b111, DEFAULT_PHASE1), true);
  assert.equal(isStable(0b1000, DEFAULT_PHASE1), true); // older bits do not count
  assert.equal(isStable(0b110, DEFAULT_PHASE1), false); // CV 0.71
  assert.equal(isStable(0b001, DEFAULT_PHASE1), false); // CV 1.41
});

Deno.test("a looser CV threshold also calls two-of-three pages stable", () => {
  const p = { ...DEFAULT_PHASE1, cvThreshold: 0.8 };
  assert.equal(isStable(0b011, p), true);
  assert.equal(isStable(0b001, p), false);
});

Deno.test("data shift keeps a run longer than half the window and flips a fresh change", () => {
  assert.equal(dataShift(0b11, DEFAULT_PHASE1), 1);
  assert.equal(dataShift(0b00, DEFAULT_PHASE1), 0);
  assert.equal(dataShift(0b01, DEFAULT_PHASE1), 0); // just became dirty: run 1 of 2, flip
  assert.equal(dataShift(0b10, DEFAULT_PHASE1), 1); // just became clean: flip back to dirty
  const w4 = { ...DEFAULT_PHASE1, shiftWindow: 4, shiftThreshold: 0.25 };
  assert.equal(dataShift(0b0001, w4), 0); // run 1 of 4 is not above 25 %: flip
  assert.equal(dataShift(0b0001, { ...w4, shiftThreshold: 0.2 }), 1); // above 20 %: keep
});

Deno.test("a page of a mapping younger than k rounds is never stable", () => {
  assert.equal(isStable(0b000, DEFAULT_PHASE1, 2), false);
  assert.equal(isStable(0b000, DEFAULT_PHASE1, 3), true);
});
