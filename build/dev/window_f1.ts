/**
 * Development aid: per-page F1 and count error in round windows (0.5 s, 2 s, 10 s) of the
 * held-out providers on corpus traces.
 *
 * Usage: deno run -A build/dev/window_f1.ts [--predictors u2c,rates,u2c-ticks,last-value]
 *        [--prior N] [traces…]   (--prior: the window model's prior instead of the sidecar's)
 *
 * @module
 */
import {
  createPredictor,
  evaluateWindows,
  heldOutModelFile,
  loadWindowModel,
  type PredictorName,
  PredictorProvider,
  replayProviderFactory,
  type WindowPredictor,
} from "../../src/predict/mod.ts";
import { readTraceFile } from "../../src/trace/mod.ts";

const args = [...Deno.args];
const i = args.indexOf("--predictors");
const predictors = i < 0
  ? ["u2c", "rates", "u2c-ticks", "last-value"]
  : args.splice(i, 2)[1].split(",");
const j = args.indexOf("--prior");
const prior = j < 0 ? undefined : Number(args.splice(j, 2)[1]);
const corpus = new URL("../../models/corpus/", import.meta.url).pathname;
const files = args.length > 0
  ? args
  : [...Deno.readDirSync(corpus)].map((e) => e.name).filter((n) => n.endsWith(".u2ct.gz")).sort()
    .map((n) => corpus + n);
for (const file of files) {
  const trace = await readTraceFile(file);
  for (const p of predictors) {
    const t0 = performance.now();
    let provider: WindowPredictor = "last-value";
    if (p === "u2c" && prior !== undefined) {
      const workload = trace.header.workload?.name ?? "";
      const windowModel = await loadWindowModel(
        heldOutModelFile("models", "u2c-windows", workload),
      );
      provider = new PredictorProvider(
        createPredictor({ mode: "phase1-only", featureCount: trace.header.featureNames.length }),
        { windowModel, prior },
      );
    } else if (p !== "last-value") {
      provider = (await replayProviderFactory(p as PredictorName, "models", trace.header))();
    }
    const scores = await evaluateWindows(trace, provider);
    console.log(
      file.split("/").pop(),
      p.padEnd(10),
      scores.map((s) => `${s.windowMs}: F1 ${s.f1.toFixed(3)} ape ${s.countApeMedian.toFixed(3)}`)
        .join("  "),
      `${((performance.now() - t0) / 1000).toFixed(1)}s`,
    );
  }
}
