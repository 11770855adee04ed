/**
 * Export training data of the window model (models/train_windows.py): page-rounds of corpus
 * traces with the model's inputs and, as targets, whether the page is written within the next
 * round window of each class (`WINDOW_CLASSES_MS`: the union of the trace's ticks over 100 ms …
 * 30 s, the lengths pre-copy rounds take on the simulator's links and the corpus' memory sizes).
 *
 * Usage: deno run -A models/export_windows.ts [--out DIR] [--cap N] TRACE...
 * (default DIR .cache/predict-windows, N 40000 records per trace)
 *
 * Pages: every page of every live mapping after the 16-round warm-up that phase 1 does not call
 * stable-dirty (those are written in every window), sampled uniformly (rate = cap / total, seed
 * 4242), so the records follow the distribution the provider sums over. Per trace NAME:
 * - NAME.x.f32: n × 16 × 5 window inputs (`writeWindow`);
 * - NAME.f.f32: n × F normalised features of the round;
 * - NAME.g.f32: n × 4 long-run inputs (`longRunInputs`);
 * - NAME.y.u16: n × 2 — bit k of [0]: written within class k; bit k of [1]: known (the trace
 *   lasts that long after the round, or the page was written before its end);
 * and `index.json`.
 *
 * @module
 */
import { readTraceFile } from "../src/trace/mod.ts";
import { mulberry32, takeOptions } from "./script_args.ts";
import {
  CHANNELS,
  DEFAULT_PHASE1,
  isStable,
  LONG_RUN_INPUTS,
  longRunInputs,
  PageHistory,
  WINDOW_CLASSES_MS,
  writeWindow,
} from "../src/predict/mod.ts";

const WARMUP = 16, WINDOW = 16, RADIUS = 2;

const { options, rest: args } = takeOptions(Deno.args, {
  "--out": ".cache/predict-windows",
  "--cap": "40000",
});
const out = options["--out"];
const cap = Number(options["--cap"]);
await Deno.mkdir(out, { recursive: true });
const index = [];
const K = WINDOW_CLASSES_MS.length;
for (const file of args) {
  const trace = await readTraceFile(file);
  const name = file.split("/").pop()!.replace(/\.u2ct(\.gz)?$/, "");
  const F = trace.header.featureNames.length;
  const rounds = trace.rounds;
  const t0 = rounds[0].elapsedMs;
  const endMs = rounds.at(-1)!.elapsedMs - t0;
  // Pass 1: candidate page-rounds, to fix the sampling rate.
  let total = 0;
  {
    const hist = new PageHistory(trace.header.pageSize, F);
    for (let t = 0; t < rounds.length; t++) {
      hist.observe(rounds[t]);
      if (t < WARMUP) continue;
      for (const h of hist.mappings.values()) {
        for (let p = 0; p < h.pages; p++) {
          if (!((h.dirty[p] & 1) === 1 && isStable(h.dirty[p], DEFAULT_PHASE1, h.age))) total++;
        }
      }
    }
  }
  const rate = Math.min(1, cap / Math.max(1, total));
  const rand = mulberry32(4242);
  const hist = new PageHistory(trace.header.pageSize, F);
  const xs: Float32Array[] = [], fs: number[] = [], gs: number[] = [];
  const picks: { t: number; id: number; page: number }[] = [];
  const g = new Float32Array(LONG_RUN_INPUTS);
  for (let t = 0; t < rounds.length; t++) {
    hist.observe(rounds[t]);
    if (t < WARMUP) continue;
    for (const h of hist.mappings.values()) {
      for (let p = 0; p < h.pages; p++) {
        if ((h.dirty[p] & 1) === 1 && isStable(h.dirty[p], DEFAULT_PHASE1, h.age)) continue;
        if (rand() >= rate) continue;
        const x = new Float32Array(WINDOW * CHANNELS);
        writeWindow(h, p, WINDOW, RADIUS, x, 0);
        xs.push(x);
        for (let i = 0; i < F; i++) fs.push(hist.features[i]);
        longRunInputs(hist, h, p, g, 0);
        gs.push(...g);
        picks.push({ t, id: h.id, page: p });
      }
    }
  }
  // Targets: the next write of each picked page after its round, from a backward sweep.
  const byRound = new Map<number, number[]>();
  picks.forEach((k, i) => {
    let list = byRound.get(k.t);
    if (!list) byRound.set(k.t, list = []);
    list.push(i);
  });
  const next = new Map<number, number>(); // page key → elapsed ms of its next write
  const y = new Uint16Array(picks.length * 2);
  for (let t = rounds.length - 1; t >= 0; t--) {
    const now = rounds[t].elapsedMs - t0;
    for (const i of byRound.get(t) ?? []) {
      const { id, page } = picks[i];
      const w = next.get(id * 4294967296 + page);
      let pos = 0, known = 0;
      for (let k = 0; k < K; k++) {
        const until = now + WINDOW_CLASSES_MS[k];
        if (w !== undefined && w <= until + 1e-6) pos |= 1 << k;
        if ((w !== undefined && w <= until + 1e-6) || until <= endMs + 1e-6) known |= 1 << k;
      }
      y[2 * i] = pos;
      y[2 * i + 1] = known;
    }
    for (const [id, pages] of rounds[t].dirty) {
      if (t === 0) break;
      for (const p of pages) next.set(id * 4294967296 + p, now);
    }
  }
  const n = picks.length;
  const x = new Float32Array(n * WINDOW * CHANNELS);
  xs.forEach((v, i) => x.set(v, i * WINDOW * CHANNELS));
  await Deno.writeFile(`${out}/${name}.x.f32`, new Uint8Array(x.buffer));
  await Deno.writeFile(`${out}/${name}.f.f32`, new Uint8Array(Float32Array.from(fs).buffer));
  await Deno.writeFile(`${out}/${name}.g.f32`, new Uint8Array(Float32Array.from(gs).buffer));
  await Deno.writeFile(`${out}/${name}.y.u16`, new Uint8Array(y.buffer));
  index.push({
    name,
    workload: trace.header.workload?.name ?? name,
    n,
    candidates: total,
    rate,
    featureCount: F,
  });
  console.error(`${name}: ${n} of ${total} page-rounds`);
}
await Deno.writeTextFile(
  `${out}/index.json`,
  JSON.stringify(
    {
      window: WINDOW,
      radius: RADIUS,
      windowsMs: WINDOW_CLASSES_MS,
      longRun: LONG_RUN_INPUTS,
      traces: index,
    },
    null,
    1,
  ),
);
