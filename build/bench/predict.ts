/**
 * Predictor benchmark (prints one JSON object): one full prediction round for a 1 GiB container
 * (262,144 pages in one mapping) with U unstable pages (U = 1,000 / 10,000 / 26,214 = 10 %;
 * alternating, i.e. two distinct histories, or random, i.e. nearly all distinct),
 * the u2c model run on them in one batch (onnxruntime-web wasm, one thread); the same round with
 * the last-value predictor in the same run is the baseline. Also: observe() cost per round,
 * predictor state bytes at 1 GiB, pages/s and ms/GiB. Goal: ≤ 10 ms per round, ≤ 64 MB state.
 *
 * @module
 */
import { createPredictor, loadModel, type Predictor } from "../../src/predict/mod.ts";
import { FEATURE_NAMES } from "../../src/history/features.ts";

const PAGES = 262144;
const REPEAT = 5;
const model = await loadModel(new URL("../../models/u2c-predictor.onnx", import.meta.url).pathname);
const map = {
  id: 1,
  pid: 1,
  start: 0x7f00_0000_0000,
  end: 0x7f00_0000_0000 + PAGES * 4096,
  perms: "rw-p",
  offset: 0,
  path: "",
  kind: "anon" as const,
};

/** Pseudo-random dirty bit of page i in round r (a different history for nearly every page). */
function noisy(i: number, r: number): boolean {
  let x = Math.imul(i + 1, 0x9e3779b1) ^ Math.imul(r + 1, 0x85ebca77);
  x ^= x >>> 15;
  x = Math.imul(x, 0x2c1b3c6d);
  return ((x ^ (x >>> 12)) & 1) === 1;
}

/**
 * Feed 20 rounds: `unstable` pages either alternate (dirty every other round: two distinct
 * histories, so the model runs two rows) or are dirty at random (nearly every page its own
 * history: the model's worst case); 1 % of the pages always dirty.
 */
function feed(p: Predictor, unstable: number, pattern: "alternating" | "random"): number {
  const stride = Math.floor(PAGES / unstable);
  let observeMs = 0;
  for (let r = 0; r < 20; r++) {
    const pages: number[] = [];
    for (let i = 0; i < unstable; i++) {
      const dirty = pattern === "alternating" ? (i + r) % 2 === 0 : noisy(i, r);
      if (dirty) pages.push(i * stride);
    }
    for (let i = 0; i < PAGES / 100; i++) pages.push(i * 100 + 1);
    pages.sort((a, b) => a - b);
    const t0 = performance.now();
    p.observe({
      round: r,
      added: r === 0 ? [map] : [],
      removed: [],
      dirty: new Map([[1, Uint32Array.from(pages)]]),
      features: new Float64Array(FEATURE_NAMES.length).fill(r * 1000),
    });
    observeMs += performance.now() - t0;
  }
  return observeMs / 20;
}

async function roundMs(p: Predictor): Promise<{ ms: number; modelPages: number }> {
  await p.predict(); // warm-up
  const times: number[] = [];
  let modelPages = 0;
  for (let i = 0; i < REPEAT; i++) {
    const t0 = performance.now();
    modelPages = (await p.predict()).modelPages;
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { ms: times[Math.floor(times.length / 2)], modelPages };
}

const rows = [];
await measure(1000, "random"); // JIT warm-up of every path, discarded
for (const pattern of ["alternating", "random"] as const) {
  for (const unstable of [1000, 10000, 26214]) {
    rows.push(await measure(unstable, pattern));
  }
}

async function measure(unstable: number, pattern: "alternating" | "random") {
  const u2c = createPredictor({ model });
  const observeMs = feed(u2c, unstable, pattern);
  const base = createPredictor({ mode: "last-value", featureCount: FEATURE_NAMES.length });
  feed(base, unstable, pattern);
  const a = await roundMs(u2c);
  const b = await roundMs(base);
  return {
    pattern,
    unstablePages: unstable,
    modelRows: a.modelPages,
    u2cRoundMs: Math.round(a.ms * 100) / 100,
    lastValueRoundMs: Math.round(b.ms * 100) / 100,
    ratioToLastValue: Math.round(a.ms / b.ms * 10) / 10,
    observeMs: Math.round(observeMs * 100) / 100,
    u2cRoundWithObserveMs: Math.round((a.ms + observeMs) * 100) / 100,
    pagesPerSecond: Math.round(PAGES / (a.ms / 1000)),
    msPerGiB: Math.round(a.ms * 100) / 100,
    unstablePagesPerSecond: Math.round(unstable / (a.ms / 1000)),
    goalRoundMs: 10,
    stateBytes: u2c.stateBytes(),
    goalStateBytes: 64 * 1024 * 1024,
  };
}
console.log(JSON.stringify({ bench: "predict", pages: PAGES, model: model.file, rows }));
