import assert from "node:assert/strict";
import { recordAndCompare } from "./compare.ts";
import {
  lz4Results,
  predictResults,
  shimResults,
  simulateResults,
  traceResults,
} from "./results.ts";
import { cliResults } from "./cli_results.ts";

// Each section is computed here and, in the arm64 lane, compared with the x86_64 run's.

Deno.test("the shim's page hashes, hash diff and pagemap parsing match across architectures", () => {
  const r = shimResults() as { hashes: string[]; hashes_ts: string[]; diff: number[] };
  assert.deepEqual(r.hashes, r.hashes_ts, "native and TypeScript page hashes agree");
  assert.deepEqual(r.diff, [1, 5, 11]);
  recordAndCompare("shim", r);
});

Deno.test("the LZ4 codec's blocks match across architectures", () => {
  const r = lz4Results() as Record<string, { round_trips: boolean }>;
  for (const [name, v] of Object.entries(r)) assert.ok(v.round_trips, `${name} round-trips`);
  recordAndCompare("lz4", r);
});

Deno.test("corpus traces encode, decode and summarize the same across architectures", async () => {
  const r = await traceResults() as Record<string, { sha256: string; reencoded_sha256: string }>;
  for (const v of Object.values(r)) assert.equal(v.sha256, v.reencoded_sha256);
  recordAndCompare("trace", r);
});

Deno.test("phase 1 and the phase-2 model give the same probabilities across architectures", async () => {
  const r = await predictResults() as Record<string, { probs: number[]; model_pages: number }[]>;
  for (const points of Object.values(r)) {
    assert.ok(points.some((p) => p.model_pages > 0 && p.probs.length > 0), "the model ran");
  }
  recordAndCompare("predict", r);
});

Deno.test("every policy simulates the same migration across architectures", async () => {
  const r = await simulateResults() as Record<string, { results: unknown[] }>;
  for (const v of Object.values(r)) assert.equal(v.results.length, 9, "nine policies");
  recordAndCompare("simulate", r);
});

Deno.test("u2cm --help, trace info, simulate and report print the same across architectures", async () => {
  recordAndCompare("cli", await cliResults());
});
