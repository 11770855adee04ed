/**
 * Benchmark: the dirty-count error of the predictions made before each round
 * of simulated migrations of the corpus traces (held-out models), |predicted − actual| / actual.
 * Prints the median over all rounds and per trace, per predictor.
 *
 * Usage: deno run -A build/bench/round_error.ts [--predictors u2c,rates,…] [--links 100mbit,1gbit]
 *        [--policies u2c,phaul] [traces…]
 *
 * @module
 */
import { type PredictorName, replayProviderFactory } from "../../src/predict/mod.ts";
import { createPolicy } from "../../src/policy/mod.ts";
import { CRIU_COSTS, median, parseBandwidth, simulate, TraceTimeline } from "../../src/sim/mod.ts";
import { readTraceFile } from "../../src/trace/mod.ts";

const args = [...Deno.args];
const opt = (name: string, def: string) => {
  const i = args.indexOf(name);
  if (i < 0) return def;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
};
const predictors = opt("--predictors", "u2c").split(",") as PredictorName[];
const links = opt("--links", "100mbit,1gbit").split(",");
const policies = opt("--policies", "u2c,phaul,fixed-3").split(",");
const starts = opt("--starts", "0.1,0.4,0.7").split(",").map(Number);
const corpus = new URL("../../models/corpus/", import.meta.url).pathname;
const files = args.length > 0
  ? args
  : [...Deno.readDirSync(corpus)].map((e) => e.name).filter((n) => n.endsWith(".u2ct.gz")).sort()
    .map((n) => corpus + n);
const out: Record<string, unknown> = {};
const t0 = performance.now();
for (const predictor of predictors) {
  const all: number[] = [];
  const perTrace: Record<string, number> = {};
  for (const file of files) {
    const trace = await readTraceFile(file);
    const tl = new TraceTimeline(trace);
    const duration = tl.periodMs;
    const factory = await replayProviderFactory(predictor, "models", trace.header);
    const errs: number[] = [];
    for (const link of links) {
      for (const start of starts) {
        for (const policy of policies) {
          const r = await simulate(tl, createPolicy(policy), {
            ...CRIU_COSTS,
            bandwidthBps: parseBandwidth(link),
            rttMs: 1,
            startMs: start * duration,
          }, factory());
          for (const x of r.roundLog) {
            if (x.predictedDirty === undefined || x.pagesDirtied === 0) continue;
            errs.push(Math.abs(x.predictedDirty - x.pagesDirtied) / x.pagesDirtied);
          }
        }
      }
    }
    perTrace[file.split("/").pop()!.replace(/\.u2ct(\.gz)?$/, "")] =
      Math.round(median(errs) * 1000) / 1000;
    all.push(...errs);
  }
  out[predictor] = { median: Math.round(median(all) * 1000) / 1000, rounds: all.length, perTrace };
}
console.log(
  JSON.stringify(
    {
      bench: "round_error",
      links,
      policies,
      starts,
      seconds: Math.round((performance.now() - t0) / 100) / 10,
      results: out,
    },
    null,
    1,
  ),
);
