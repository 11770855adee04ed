import assert from "node:assert/strict";
import { inRuns, type RunBounds } from "../../src/util/in_runs.ts";

const PAGE = 4096;
type Tuple = readonly [number, number];
const tuples: RunBounds<Tuple> = { start: (r) => r[0], end: (r) => r[0] + r[1] * PAGE };
const objects: RunBounds<{ vaddr: number; nrPages: number }> = {
  start: (r) => r.vaddr,
  end: (r) => r.vaddr + r.nrPages * PAGE,
};

Deno.test("inRuns agrees with a linear scan over runs of either shape, at every edge", () => {
  const lists: Tuple[][] = [[], [[0, 1]], [[PAGE, 2], [5 * PAGE, 1], [6 * PAGE, 3], [
    12 * PAGE,
    1,
  ]]];
  for (const runs of lists) {
    const asObjects = runs.map(([vaddr, nrPages]) => ({ vaddr, nrPages }));
    for (let addr = 0; addr <= 14 * PAGE; addr += PAGE / 2) {
      const want = runs.some(([s, n]) => s <= addr && addr < s + n * PAGE);
      assert.equal(inRuns(runs, addr, tuples), want, `0x${addr.toString(16)} in ${runs}`);
      assert.equal(inRuns(asObjects, addr, objects), want, `0x${addr.toString(16)} (objects)`);
    }
  }
});
