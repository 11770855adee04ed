import assert from "node:assert/strict";
import {
  integratedHazard,
  pageClass,
  PageHistory,
  shareBucket,
  SINCE_BUCKETS,
  sinceBucket,
  WindowRates,
} from "../../src/predict/mod.ts";
import { patternTrace } from "./craft.ts";

Deno.test("since buckets are octaves of 100 ms and share buckets halve", () => {
  assert.deepEqual([0, 99, 100, 299, 300, 700].map(sinceBucket), [0, 0, 1, 1, 2, 3]);
  assert.equal(sinceBucket(1e9), SINCE_BUCKETS - 1);
  assert.equal(shareBucket(0, 5000), 0);
  assert.equal(shareBucket(10, 1000), 1); // written every interval
  assert.equal(shareBucket(5, 1000), 2); // every other
  assert.equal(shareBucket(1, 1000), 4); // one in ten
});

Deno.test("window rates learn each class's hazard from the container's past only", () => {
  // Pages 0–7 every round, 8–15 every other round, 16 + (r mod 8) once every 8 rounds.
  const trace = patternTrace(200);
  const history = new PageHistory(4096, 0);
  const rates = new WindowRates();
  for (const r of trace.rounds) {
    if (r.round > 0) rates.learn(history, r.dirty, 100);
    history.observe(r);
  }
  const table = rates.table();
  const p = (page: number, ms: number) => {
    const c = pageClass(history, 1, page);
    const share = Math.floor(c / SINCE_BUCKETS);
    const m = history.mappings.get(1)!;
    const since = history.nowMs - m.lastWriteMs[page];
    return 1 - Math.exp(-integratedHazard(table, share, since, ms));
  };
  assert.ok(p(0, 100) > 0.95, `every-round page ${p(0, 100)}`);
  assert.ok(p(40, 10_000) < 0.05, `never-written page ${p(40, 10_000)}`);
  // The rotating pages: written once every 800 ms, so almost surely within 2 s.
  const rotating = [16, 17, 18, 19, 20, 21, 22, 23].map((q) => p(q, 2000));
  for (const v of rotating) assert.ok(v > 0.8, `rotating page within 2 s: ${v}`);
  assert.ok(rates.stateBytes() < 4096);
});
