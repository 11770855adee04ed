import assert from "node:assert/strict";
import { TraceTimeline } from "../../src/sim/mod.ts";
import { pageKey } from "../../src/predict/mod.ts";
import { craftTrace, range } from "../support/traces.ts";

/** Round r (1..40) dirties pages [r·10, r·10 + 20): neighbouring rounds overlap. */
const trace = craftTrace(1024, 41, (r) => range(r * 10, r * 10 + 20));
const keys = (pages: number[]) => new Set(pages.map((p) => pageKey(1, p)));

function naiveUnion(first: number, last: number): Set<number> {
  const out = new Set<number>();
  for (let r = first; r <= last; r++) for (const p of range(r * 10, r * 10 + 20)) out.add(p);
  return keys([...out]);
}

Deno.test("a window of whole intervals is the union of their dirty sets, at any length", () => {
  const tl = new TraceTimeline(trace);
  for (const [a, b] of [[0, 100], [0, 4000], [300, 1700], [1200, 1300], [100, 3900]]) {
    const got = tl.dirtyBetween(a, b);
    assert.deepEqual(got, naiveUnion(a / 100 + 1, b / 100), `[${a}, ${b})`);
    assert.equal(tl.dirtyCount(a, b), got.size);
  }
});

Deno.test("a partial interval contributes a share of its pages, the same share every time", () => {
  const tl = new TraceTimeline(trace);
  const half = tl.dirtyBetween(1000, 1050); // half of round 11
  assert.ok(half.size > 2 && half.size < 18, `${half.size} of 20 pages`);
  for (const k of half) assert.ok(naiveUnion(11, 11).has(k));
  assert.deepEqual(new TraceTimeline(trace).dirtyBetween(1000, 1050), half);
  const whole = tl.dirtyBetween(950, 1150); // half of 10, all of 11, half of 12
  for (const k of naiveUnion(11, 11)) assert.ok(whole.has(k));
});

Deno.test("past its end the timeline loops, and a window over a whole loop is every page", () => {
  const tl = new TraceTimeline(trace);
  assert.equal(tl.periodMs, 4000);
  assert.deepEqual(tl.dirtyBetween(4000, 4300), naiveUnion(1, 3));
  assert.deepEqual(
    tl.dirtyBetween(3800, 4200),
    new Set([...naiveUnion(39, 40), ...naiveUnion(1, 2)]),
  );
  assert.deepEqual(tl.dirtyBetween(2500, 2500 + 3 * 4000), naiveUnion(1, 40));
  assert.deepEqual(tl.residentAt(500), new Set([...keys(range(0, 1024))]));
});

Deno.test("samples completing in a window come one per interval, with their rounds", () => {
  const tl = new TraceTimeline(trace);
  const s = tl.samplesCompleting(-1, 300);
  assert.deepEqual(s.map((x) => x.round?.round), [0, 1, 2, 3]);
  assert.equal(s[0].intervalMs, 0);
  const looped = tl.samplesCompleting(3950, 4150);
  assert.deepEqual(looped.map((x) => x.round?.round), [40, 41]);
  assert.deepEqual(looped[1].round?.added, []);
});
