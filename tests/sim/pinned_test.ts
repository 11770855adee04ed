/**
 * Pinned replays: a few corpus cases' numbers as the Set-based replay (before the bitmap
 * timeline) computed them, so a faster replay cannot drift. Regenerate only for a deliberate
 * model change: `deno run -A build/dev/pin_sim.ts window`.
 */
import assert from "node:assert/strict";
import { compare, CRIU_COSTS, type SimConfig } from "../../src/sim/mod.ts";
import { readTraceFile } from "../../src/trace/mod.ts";

/** [total_ms, downtime_ms, bytes, rounds] per policy. */
type Pinned = Record<string, [number, number, number, number]>;

const CASES: {
  trace: string;
  bandwidthBps: number;
  start: number;
  engine: "predump" | "delta";
  rows: Pinned;
}[] = [
  {
    trace: "numpy-cg-a",
    bandwidthBps: 1.25e+08,
    start: 0.1,
    engine: "predump",
    rows: {
      "phaul": [182.4, 32.5, 18411520, 3],
      "lxd": [181.2, 33.7, 18362368, 2],
      "qemu": [200.3, 200.3, 16846848, 0],
      "stop-and-copy": [200.3, 200.3, 16846848, 0],
      "post-copy": [166.8, 32, 16846848, 0],
      "fixed-3": [182.4, 32.5, 18411520, 3],
      "oracle": [169.1, 33.7, 16850944, 2],
    },
  },
  {
    trace: "torch-b",
    bandwidthBps: 1.25e+09,
    start: 0.7,
    engine: "predump",
    rows: {
      "phaul": [785.2, 71.6, 894922752, 9],
      "lxd": [815.2, 246.8, 782467072, 4],
      "qemu": [965.3, 965.3, 334544896, 0],
      "stop-and-copy": [965.3, 965.3, 334544896, 0],
      "post-copy": [299.6, 32, 334544896, 0],
      "fixed-3": [758.3, 254.9, 705474560, 3],
      "oracle": [454.4, 36, 511885312, 10],
    },
  },
  {
    trace: "stress-vm-b",
    bandwidthBps: 1.25e+07,
    start: 0.4,
    engine: "delta",
    rows: {
      "phaul": [5828.9, 171.4, 70692864, 2],
      "lxd": [5828.9, 171.4, 70692864, 2],
      "qemu": [5828.9, 181.6, 70692864, 1],
      "stop-and-copy": [5818.7, 5818.7, 70578176, 0],
      "post-copy": [5678.3, 32, 70578176, 0],
      "fixed-3": [5829.9, 171.4, 70692864, 3],
      "oracle": [5819.7, 171.4, 70578176, 2],
    },
  },
  {
    trace: "xz-a",
    bandwidthBps: 1.25e+08,
    start: 0.4,
    engine: "predump",
    rows: {
      "phaul": [7291.2, 968.3, 882966528, 9],
      "lxd": [5156.1, 884.6, 618536960, 6],
      "qemu": [12401.6, 348.5, 1536065536, 18],
      "stop-and-copy": [1006.1, 1006.1, 97509376, 0],
      "post-copy": [812.1, 32, 97509376, 0],
      "fixed-3": [3036.7, 884.8, 353976320, 3],
      "oracle": [1014.2, 875.4, 101646336, 1],
    },
  },
];

const corpus = new URL("../../models/corpus/", import.meta.url).pathname;

for (const c of CASES) {
  Deno.test(`the replay of ${c.trace} at ${c.bandwidthBps / 125e3} Mbit/s (${c.engine}, start ${c.start}) keeps its pinned numbers`, async () => {
    const trace = await readTraceFile(`${corpus}${c.trace}.u2ct.gz`);
    const duration = trace.rounds.at(-1)!.elapsedMs - trace.rounds[0].elapsedMs;
    const config: SimConfig = {
      ...CRIU_COSTS,
      bandwidthBps: c.bandwidthBps,
      rttMs: 1,
      startMs: c.start * duration,
      engine: c.engine,
    };
    const { results } = await compare([{ name: c.trace, trace }], Object.keys(c.rows), config);
    for (const r of results) {
      assert.deepEqual(
        [r.total_ms, r.downtime_ms, r.bytes, r.rounds],
        c.rows[r.policy],
        `${r.policy} drifted`,
      );
    }
  });
}
