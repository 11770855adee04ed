import assert from "node:assert/strict";
import { compareWithReference, differences, PROBABILITY_TOLERANCE } from "./compare.ts";
import { lz4Results, shimResults } from "./results.ts";

// The arm64 lane's verdict rests on these comparisons: a difference must fail, not pass.

function referenceFile(sections: Record<string, unknown>): string {
  const file = Deno.makeTempFileSync({ prefix: "u2cm-arch-ref-", suffix: ".json" });
  Deno.writeTextFileSync(file, JSON.stringify({ arch: "x86_64", sections }));
  return file;
}

Deno.test("a changed page hash, LZ4 block or pagemap page fails the cross-architecture comparison", () => {
  const shim = shimResults() as { hashes: string[]; pagemap: { dirty: number[] }[] };
  const lz4 = lz4Results() as Record<string, { sha256: string; bytes: number }>;
  const file = referenceFile({ shim, lz4 });
  try {
    compareWithReference("shim", shimResults(), file); // the same results pass
    compareWithReference("lz4", lz4Results(), file);
    const hash = structuredClone(shim);
    hash.hashes[3] = hash.hashes[3].replace(/.$/, (c) => (c === "0" ? "1" : "0"));
    assert.throws(() => compareWithReference("shim", hash, file), /shim\.hashes\[3\]/);
    const page = structuredClone(shim);
    page.pagemap[0].dirty.push(999_999);
    assert.throws(() => compareWithReference("shim", page, file), /1 place\(s\)/);
    const block = structuredClone(lz4);
    block.text.bytes += 1;
    assert.throws(() => compareWithReference("lz4", block, file), /lz4\.text\.bytes/);
    assert.throws(() => compareWithReference("cli", {}, file), /lack section 'cli'/);
  } finally {
    Deno.removeSync(file);
  }
});

Deno.test("probabilities may differ by at most 1e-6 and every other number not at all", () => {
  const point = { round: 20, model_pages: 3, expected_dirty: [12.5], probs: [1, 0, 7, 0.25] };
  const near = { ...point, probs: [1, 0, 7, 0.25 + PROBABILITY_TOLERANCE / 2] };
  const far = { ...point, probs: [1, 0, 7, 0.25 + 2 * PROBABILITY_TOLERANCE] };
  assert.deepEqual(differences([point], [near]), []);
  assert.deepEqual(differences([point], [far]), [`[0].probs[3]: 0.25 vs ${0.25 + 2e-6}`]);
  assert.equal(differences([point], [{ ...point, round: 21 }]).length, 1, "a round number");
  assert.equal(differences([point], [{ ...point, model_pages: 4 }]).length, 1, "a page count");
  assert.equal(differences(point, { ...point, expected_dirty: [12.5 + 1e-4] }).length, 1);
  assert.deepEqual(differences(point, { ...point, expected_dirty: [12.5 + 1e-6] }), []);
  assert.equal(differences({ a: 1 }, { a: 1, b: 2 }).length, 1, "an extra key");
  assert.equal(differences([1, 2], [1, 2, 3]).length, 1, "an extra entry");
  assert.equal(differences({ help: "u2cm" }, { help: "u2cm " }).length, 1, "text");
});
