/**
 * Export the phase-1-unstable page-rounds of corpus traces in the full (unsampled-by-class)
 * distribution the online predictor sees, for models/train.py (training on the true prior,
 * choosing the decision threshold on training workloads) and a fast offline proxy of
 * `u2cm predict-eval` (models/proxy_eval.py).
 *
 * Usage: deno run -A models/export_eval.ts [--out DIR] [--cap N] TRACE...
 * (default DIR .cache/predict-full, N 200000 records per trace)
 *
 * Per trace NAME it writes
 * - NAME.r.u32: n × 8 uint32 records — own dirty bits, the dirty bits of the neighbours at
 *   offsets −2, −1, +1, +2 (0 outside the mapping), neighbour count, mapping age, round index;
 * - NAME.y.u8: n labels — bit s = dirty in round t+s+1, bit 4+s = that round exists in the trace;
 * - NAME.w.f32: n weights — 1 / sampling rate, so weighted sums estimate the whole trace;
 * - NAME.f.f32: rounds × F normalised features (the predictor's `history.features` per round);
 * - NAME.k.u32: every page-round (not sampled) by pattern key (`patternKey`): rows of round, key,
 *   stable (1/0), pages, dirty at t+1, t+2, t+3 — what the online pattern table learns from;
 * and `index.json` with, per trace, the exact confusion counts (tp, fp, fn, tn per horizon) of
 * the phase-1-stable pages (data shift) and the last-value / data-shift counts of the unstable
 * pages (exact, all of them), so the proxy reproduces predict-eval's whole-trace F1.
 *
 * The scoring loop mirrors src/predict/evaluate.ts (warm-up 16, every page of every live
 * mapping, rounds without a future skipped per horizon step).
 *
 * @module
 */
import { readTraceFile } from "../src/trace/mod.ts";
import { mulberry32, takeOptions } from "./script_args.ts";
import {
  dataShift,
  DEFAULT_PHASE1,
  inPageSet,
  isStable,
  PageHistory,
  patternKey,
} from "../src/predict/mod.ts";

const WARMUP = 16, HORIZON = 3, RADIUS = 2;

type Counts = { tp: number[]; fp: number[]; fn: number[]; tn: number[] };
const counts = (): Counts => ({
  tp: [0, 0, 0],
  fp: [0, 0, 0],
  fn: [0, 0, 0],
  tn: [0, 0, 0],
});
function add(c: Counts, s: number, p: number, d: boolean): void {
  if (p && d) c.tp[s]++;
  else if (p) c.fp[s]++;
  else if (d) c.fn[s]++;
  else c.tn[s]++;
}

const { options, rest: args } = takeOptions(Deno.args, {
  "--out": ".cache/predict-full",
  "--cap": "200000",
});
const out = options["--out"];
const cap = Number(options["--cap"]);
await Deno.mkdir(out, { recursive: true });
const index = [];
for (const file of args) {
  const trace = await readTraceFile(file);
  const name = file.split("/").pop()!.replace(/\.u2ct(\.gz)?$/, "");
  const F = trace.header.featureNames.length;
  const rounds = trace.rounds;
  // Pass 1: count unstable page-rounds to fix the sampling rate.
  let total = 0;
  {
    const hist = new PageHistory(trace.header.pageSize, F);
    for (let t = 0; t < rounds.length; t++) {
      hist.observe(rounds[t]);
      if (t < WARMUP) continue;
      for (const h of hist.mappings.values()) {
        for (let p = 0; p < h.pages; p++) if (!isStable(h.dirty[p], DEFAULT_PHASE1, h.age)) total++;
      }
    }
  }
  const rate = Math.min(1, cap / Math.max(1, total));
  const rand = mulberry32(4242);
  const hist = new PageHistory(trace.header.pageSize, F);
  const recs: number[] = [], ys: number[] = [];
  const feats = new Float32Array(rounds.length * F);
  const stable = counts(), unstableLV = counts(), unstableShift = counts();
  // every unstable page-round by pattern key: [round, key, pages, dirty at t+1..t+3]
  const keyed: number[] = [];
  for (let t = 0; t < rounds.length; t++) {
    hist.observe(rounds[t]);
    feats.set(hist.features, t * F);
    if (t < WARMUP) continue;
    const byKey = new Map<number, number[]>();
    for (const h of hist.mappings.values()) {
      for (let p = 0; p < h.pages; p++) {
        const bits = h.dirty[p];
        const st = isStable(bits, DEFAULT_PHASE1, h.age);
        let y = 0;
        for (let s = 0; s < HORIZON; s++) {
          const future = rounds[t + s + 1];
          if (!future) continue;
          const d = inPageSet(future.dirty, h.id, p);
          y |= (d ? 1 << s : 0) | (1 << (4 + s));
          if (st) add(stable, s, dataShift(bits, DEFAULT_PHASE1), d);
          else {
            add(unstableLV, s, bits & 1, d);
            add(unstableShift, s, dataShift(bits, DEFAULT_PHASE1), d);
          }
        }
        {
          const k = patternKey(h, p, 0);
          let row = byKey.get(k * 2 + (st ? 1 : 0));
          if (!row) byKey.set(k * 2 + (st ? 1 : 0), row = [t, k, st ? 1 : 0, 0, 0, 0, 0]);
          row[3]++;
          for (let s = 0; s < HORIZON; s++) row[4 + s] += (y >> s) & 1;
        }
        if (st || rand() >= rate) continue;
        const nb = [0, 0, 0, 0];
        let n = 0;
        [-2, -1, 1, 2].forEach((o, i) => {
          const q = p + o;
          if (q >= 0 && q < h.pages && Math.abs(o) <= RADIUS) {
            nb[i] = h.dirty[q];
            n++;
          }
        });
        recs.push(bits, nb[0], nb[1], nb[2], nb[3], n, Math.min(h.age, 1 << 30), t);
        ys.push(y);
      }
    }
    for (const row of byKey.values()) keyed.push(...row);
  }
  const n = ys.length;
  await Deno.writeFile(`${out}/${name}.r.u32`, new Uint8Array(Uint32Array.from(recs).buffer));
  await Deno.writeFile(`${out}/${name}.y.u8`, new Uint8Array(ys));
  await Deno.writeFile(
    `${out}/${name}.w.f32`,
    new Uint8Array(new Float32Array(n).fill(1 / rate).buffer),
  );
  await Deno.writeFile(`${out}/${name}.f.f32`, new Uint8Array(feats.buffer));
  await Deno.writeFile(`${out}/${name}.k.u32`, new Uint8Array(Uint32Array.from(keyed).buffer));
  index.push({
    name,
    workload: trace.header.workload?.name ?? name,
    n,
    unstable: total,
    rate,
    rounds: rounds.length,
    featureCount: F,
    stable,
    unstableLastValue: unstableLV,
    unstableDataShift: unstableShift,
  });
  console.error(`${name}: ${n} of ${total} unstable page-rounds`);
}
await Deno.writeTextFile(
  `${out}/index.json`,
  JSON.stringify({ warmup: WARMUP, horizon: HORIZON, radius: RADIUS, traces: index }, null, 1),
);
