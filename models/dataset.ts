/**
 * Export training samples for models/train.py from corpus traces, using the same history and
 * window code as the online predictor (so training and inference see identical inputs).
 *
 * Usage: deno run -A models/dataset.ts [--out DIR] TRACE...  (default DIR .cache/predict-data)
 *
 * Per trace it writes NAME.x.f32 (n×16×5), NAME.f.f32 (n×F), NAME.y.u8 (n×3 labels),
 * NAME.c.u8 (n categories: 0 unstable, 1 stable with dirty bits, 2 all clean) and an index.json.
 * Per round it samples at most 60 unstable, 20 stable-but-dirty and 5 clean pages (seeded).
 *
 * @module
 */
import { readTraceFile } from "../src/trace/mod.ts";
import {
  CHANNELS,
  DEFAULT_PHASE1,
  inPageSet,
  isStable,
  PageHistory,
  writeWindow,
} from "../src/predict/mod.ts";
import { mulberry32, takeOptions } from "./script_args.ts";

/** Sampling and input-shape constants shared with train.py (keep in sync). */
export const DATASET = { window: 16, radius: 2, horizon: 3, warmup: 16, caps: [60, 20, 5] };

const { options, rest: args } = takeOptions(Deno.args, { "--out": ".cache/predict-data" });
const out = options["--out"];
await Deno.mkdir(out, { recursive: true });
const index: { name: string; workload: string; n: number; featureCount: number }[] = [];
for (const file of args) {
  const trace = await readTraceFile(file);
  const name = file.split("/").pop()!.replace(/\.u2ct(\.gz)?$/, "");
  const F = trace.header.featureNames.length;
  const { window, radius, horizon, warmup, caps } = DATASET;
  const rand = mulberry32(12345);
  const hist = new PageHistory(trace.header.pageSize, F);
  const xs: Float32Array[] = [], fs: Float32Array[] = [], ys: number[] = [], cs: number[] = [];
  const rounds = trace.rounds;
  for (let t = 0; t < rounds.length - horizon; t++) {
    hist.observe(rounds[t]);
    if (t < warmup) continue;
    const pools: [number, number][][] = [[], [], []];
    for (const h of hist.mappings.values()) {
      for (let p = 0; p < h.pages; p++) {
        const bits = h.dirty[p] & 0xffff;
        const cat = !isStable(bits, DEFAULT_PHASE1, h.age) ? 0 : bits !== 0 ? 1 : 2;
        pools[cat].push([h.id, p]);
      }
    }
    for (let cat = 0; cat < 3; cat++) {
      const pool = pools[cat];
      const take = Math.min(caps[cat], pool.length);
      for (let i = 0; i < take; i++) { // partial Fisher-Yates
        const j = i + Math.floor(rand() * (pool.length - i));
        [pool[i], pool[j]] = [pool[j], pool[i]];
        const [id, page] = pool[i];
        const x = new Float32Array(window * CHANNELS);
        writeWindow(hist.mappings.get(id)!, page, window, radius, x, 0);
        xs.push(x);
        fs.push(hist.features.slice());
        for (let s = 1; s <= horizon; s++) {
          ys.push(inPageSet(rounds[t + s].dirty, id, page) ? 1 : 0);
        }
        cs.push(cat);
      }
    }
  }
  const n = xs.length;
  const x = new Float32Array(n * window * CHANNELS);
  const f = new Float32Array(n * F);
  for (let i = 0; i < n; i++) {
    x.set(xs[i], i * window * CHANNELS);
    f.set(fs[i], i * F);
  }
  await Deno.writeFile(`${out}/${name}.x.f32`, new Uint8Array(x.buffer));
  await Deno.writeFile(`${out}/${name}.f.f32`, new Uint8Array(f.buffer));
  await Deno.writeFile(`${out}/${name}.y.u8`, new Uint8Array(ys));
  await Deno.writeFile(`${out}/${name}.c.u8`, new Uint8Array(cs));
  index.push({ name, workload: trace.header.workload?.name ?? name, n, featureCount: F });
  console.error(`${name}: ${n} samples`);
}
await Deno.writeTextFile(
  `${out}/index.json`,
  JSON.stringify({ ...DATASET, traces: index }, null, 1),
);
