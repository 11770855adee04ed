import assert from "node:assert/strict";
import { lowerBound } from "../../src/util/lower_bound.ts";

Deno.test("lowerBound finds the first index ≥ x, within [from, to), against a linear scan", () => {
  const a = Float64Array.from([1, 3, 3, 3, 7, 9, 12], (x) => x * 4096);
  for (let from = 0; from <= a.length; from++) {
    for (let to = from; to <= a.length; to++) {
      for (let x = 0; x <= 13 * 4096; x += 2048) {
        let want = from;
        while (want < to && a[want] < x) want++;
        assert.equal(lowerBound(a, x, from, to), want, `x ${x} in [${from}, ${to})`);
      }
    }
  }
  assert.equal(lowerBound([], 5), 0);
});
