import assert from "node:assert/strict";
import { LANE_TRACES, sliceCorpusTrace } from "./slices.ts";
import { sha256 } from "./results.ts";

Deno.test("the arm64 lane's trace slices are the first rounds of the shipped corpus traces", async () => {
  for (const t of LANE_TRACES) {
    const want = await sliceCorpusTrace(t);
    const have = Deno.readFileSync(t.slice);
    assert.equal(
      sha256(have),
      sha256(want),
      `${t.slice} is stale: deno run -A build/arm64/slices.ts`,
    );
  }
});
