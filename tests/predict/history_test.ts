import assert from "node:assert/strict";
import { CHANNELS, normaliseFeature, PageHistory, writeWindow } from "../../src/predict/mod.ts";
import { mapping } from "./craft.ts";

const none = new Map<number, Uint32Array>();

Deno.test("round 0 sets no bits and later rounds shift the history one bit per round", () => {
  const h = new PageHistory(4096, 1);
  h.observe({
    round: 0,
    added: [mapping(1, 4)],
    removed: [],
    dirty: new Map([[1, Uint32Array.of(0, 1, 2, 3)]]),
    features: [0],
  });
  assert.deepEqual([...h.mappings.get(1)!.dirty], [0, 0, 0, 0]);
  h.observe({
    round: 1,
    added: [],
    removed: [],
    dirty: new Map([[1, Uint32Array.of(2)]]),
    features: [0],
  });
  h.observe({
    round: 2,
    added: [],
    removed: [],
    dirty: new Map([[1, Uint32Array.of(0, 2)]]),
    features: [0],
  });
  assert.deepEqual([...h.mappings.get(1)!.dirty], [0b01, 0, 0b11, 0]);
});

Deno.test("a mapping that appears starts clean and one that vanishes is dropped", () => {
  const h = new PageHistory(4096, 0);
  h.observe({ round: 0, added: [mapping(1, 2)], removed: [], dirty: none, features: [] });
  h.observe({
    round: 1,
    added: [mapping(2, 3)],
    removed: [],
    dirty: new Map([[2, Uint32Array.of(1)]]),
    features: [],
  });
  assert.deepEqual([...h.mappings.get(2)!.dirty], [0, 1, 0]);
  assert.equal(h.totalPages(), 5);
  h.observe({ round: 2, added: [], removed: [1], dirty: none, features: [] });
  assert.deepEqual([...h.mappings.keys()], [2]);
  assert.equal(h.totalPages(), 3);
});

Deno.test("page indices beyond the mapping are ignored", () => {
  const h = new PageHistory(4096, 0);
  h.observe({ round: 0, added: [mapping(1, 2)], removed: [], dirty: none, features: [] });
  h.observe({
    round: 1,
    added: [],
    removed: [],
    dirty: new Map([[1, Uint32Array.of(1, 9)]]),
    features: [],
  });
  assert.deepEqual([...h.mappings.get(1)!.dirty], [0, 1]);
});

Deno.test("the window lists the page's bits oldest first and its neighbours' mean", () => {
  const h = new PageHistory(4096, 0);
  h.observe({ round: 0, added: [mapping(1, 3)], removed: [], dirty: none, features: [] });
  h.observe({
    round: 1,
    added: [],
    removed: [],
    dirty: new Map([[1, Uint32Array.of(0, 1)]]),
    features: [],
  });
  h.observe({
    round: 2,
    added: [],
    removed: [],
    dirty: new Map([[1, Uint32Array.of(2)]]),
    features: [],
  });
  const out = new Float32Array(2 * CHANNELS);
  writeWindow(h.mappings.get(1)!, 1, 2, 1, out, 0);
  // step 0 = round 1: own 1, neighbours (0 dirty, 2 clean) 0.5; step 1 = round 2: own 0, mean 0.5
  assert.deepEqual([...out], [1, 0.5, 0, 0, 1, 0, 0.5, 0, 0, 1]);
  // A window longer than the mapping's life marks the steps before it appeared as absent.
  const long = new Float32Array(4 * CHANNELS);
  writeWindow(h.mappings.get(1)!, 1, 4, 1, long, 0);
  assert.deepEqual([...long].filter((_, i) => i % CHANNELS === 4), [0, 1, 1, 1]);
});

Deno.test("features are log-scaled, sign-preserving, and NaN becomes 0", () => {
  assert.equal(normaliseFeature(NaN), 0);
  assert.equal(normaliseFeature(0), 0);
  assert.ok(normaliseFeature(1e9) > 0.8 && normaliseFeature(1e9) < 0.85);
  assert.equal(normaliseFeature(-100), -normaliseFeature(100));
});
