/**
 * `u2cm predict-eval`: score the dirty-page predictors on traces, leave-one-workload-out.
 *
 * @module
 */
import type { Command } from "commander";
import {
  BaselineError,
  createPredictor,
  evaluateTrace,
  evaluateWindows,
  heldOutModelFile,
  loadModel,
  ModelError,
  type ModelKind,
  type OnnxModel,
  type PredictorMode,
  PYTHON_BASELINES,
  type PythonBaseline,
  replayProviderFactory,
  runPythonBaselines,
  type WindowPredictor,
} from "../predict/mod.ts";
import type { Trace } from "../trace/mod.ts";
import { readTraceArgument } from "./trace_input.ts";
import { bundledModelsDir } from "../ops/assets.ts";
import { createProgress } from "../ops/progress.ts";
import type { PredictEvalResult } from "../predict/mod.ts";

export type { PredictEvalResult };
import { CliError, ExitCode } from "./errors.ts";
import { parseChoice, parsePositiveInt } from "./options.ts";

const FAST_MODES = ["u2c", "last-value", "phase1-only", "lstm"] as const;
const MODES = [...FAST_MODES, ...PYTHON_BASELINES] as const;
const FORMATS = ["json", "table"] as const;

/** Options of `predict-eval`, with their defaults. */
interface PredictEvalOptions {
  /** Trace files. */
  traces: string[];
  /** Output format. @default "table" */
  format: string;
  /** Models directory. @default "models" */
  modelsDir: string;
  /** Comma-separated models to score. @default the four in-process ones */
  models: string;
  /** Training traces of the Python baselines. @default MODELS_DIR/corpus/*.u2ct.gz */
  trainTraces?: string[];
  /** Rounds observed before scoring. @default "16" */
  warmup: string;
  /** Round windows scored, ms, comma-separated ("none": no window scores). @default "500,2000,10000" */
  windows: string;
  /** Predictors scored in round windows. @default "u2c,rates,u2c-ticks,last-value" */
  windowModels: string;
}

/** Predictors of the round-window scores: the providers, plus `last-value`. */
const WINDOW_MODELS = ["u2c", "rates", "u2c-ticks", "window", "last-value"] as const;

/** Add `predict-eval` to the program. */
export function register(program: Command): void {
  program
    .command("predict-eval")
    .description("score the dirty-page predictors on traces (leave-one-workload-out)")
    .requiredOption("--traces <files...>", "trace files (.u2ct or .u2ct.gz)")
    .option("--format <format>", `output: ${FORMATS.join("|")}`, "table")
    .option("--models-dir <dir>", "directory with the .onnx models", bundledModelsDir())
    .option(
      "--models <list>",
      `comma-separated: ${MODES.join(",")} (${PYTHON_BASELINES.join(", ")}: /usr/bin/python3 ` +
        "with python3-sklearn / python3-statsmodels, slower)",
      FAST_MODES.join(","),
    )
    .option(
      "--train-traces <files...>",
      "training traces of random-forest (default: the models dir's corpus/*.u2ct.gz)",
    )
    .option("--warmup <rounds>", "rounds observed before scoring starts", "16")
    .option(
      "--windows <ms>",
      'round windows to score per page, ms, comma-separated ("none" to skip)',
      "500,2000,10000",
    )
    .option(
      "--window-models <list>",
      `predictors scored in round windows: ${WINDOW_MODELS.join(",")}`,
      "u2c,rates,u2c-ticks,last-value",
    )
    .action(async (opts: PredictEvalOptions) => await runPredictEval(opts));
}

async function runPredictEval(opts: PredictEvalOptions): Promise<void> {
  const format = parseChoice("--format", opts.format, FORMATS);
  const warmup = parsePositiveInt("--warmup", opts.warmup);
  const modes = opts.models.split(",").map((m) => parseChoice("--models", m.trim(), MODES));
  const windowsMs = opts.windows === "none" ? [] : opts.windows.split(",").map((w) => {
    const v = Number(w);
    if (!(v >= 1 && v <= 600_000)) {
      throw new CliError(`--windows: "${w}" is not a window in ms (1–600000)`, ExitCode.Usage);
    }
    return v;
  });
  const windowModels = windowsMs.length === 0
    ? []
    : opts.windowModels.split(",").map((m) =>
      parseChoice("--window-models", m.trim(), WINDOW_MODELS)
    );
  const windows: PredictEvalWindowResult[] = [];
  const rows = new Map<string, PredictEvalResult[]>();
  const key = (trace: string, model: string) => `${model}\u0000${trace}`;
  const cache = new Map<string, OnnxModel>();
  const workloads = new Map<string, string>();
  const progress = createProgress({
    label: "predict-eval",
    total: opts.traces.length *
      (modes.filter((m) => !isPythonBaseline(m)).length + windowModels.length),
    unit: "trace × model",
  });
  for (const file of opts.traces) {
    const trace = await loadTrace(file, warmup).catch((e) => {
      progress.stop();
      throw e;
    });
    const workload = workloadOf(trace, file);
    workloads.set(file, workload);
    for (const mode of modes) {
      if (isPythonBaseline(mode)) continue;
      const model = mode === "u2c" || mode === "lstm"
        ? await modelFor(opts.modelsDir, mode, workload, cache, trace, file)
        : undefined;
      const predictor = createPredictor({
        mode: mode as PredictorMode,
        model,
        horizon: 3,
        pageSize: trace.header.pageSize,
        featureCount: trace.header.featureNames.length,
      });
      rows.set(
        key(file, mode),
        (await evaluateTrace(trace, predictor, { warmup })).map((s) => ({
          trace: file,
          model: mode,
          horizon: s.horizon,
          f1: round4(s.f1),
          precision: round4(s.precision),
          recall: round4(s.recall),
          accuracy: round4(s.accuracy),
          count_mape: round4(s.count_mape),
        })),
      );
      progress.update(rows.size, `${file.split("/").pop()} ${mode}`);
    }
    for (const model of windowModels) {
      windows.push(...await scoreWindows(trace, file, model, opts.modelsDir, windowsMs, warmup));
      progress.update(rows.size + windows.length / windowsMs.length, `${file} ${model} windows`);
    }
  }
  progress.stop();
  const python = modes.filter(isPythonBaseline);
  if (python.length > 0) {
    for (const r of await pythonBaselines(opts, python, workloads, warmup)) {
      const k = key(r.trace, r.model);
      rows.set(k, [...rows.get(k) ?? [], r]);
    }
  }
  const results: PredictEvalResult[] = [];
  for (const file of opts.traces) {
    for (const mode of modes) results.push(...rows.get(key(file, mode)) ?? []);
  }
  if (format === "json") console.log(JSON.stringify({ results, windows }));
  else {
    printTable(results);
    if (windows.length > 0) printWindows(windows);
  }
}

/** One round-window score row of `predict-eval --format json` (`windows`). */
export interface PredictEvalWindowResult {
  /** Trace file. */
  trace: string;
  /** Predictor. */
  model: string;
  /** Window length, ms. */
  window_ms: number;
  /** F1 of "written within the window", per page (p ≥ 0.5). */
  f1: number;
  /** Precision. */
  precision: number;
  /** Recall. */
  recall: number;
  /** Median |predicted − actual| / actual of the window's dirty count. */
  count_ape_median: number;
}

async function scoreWindows(
  trace: Trace,
  file: string,
  model: (typeof WINDOW_MODELS)[number],
  modelsDir: string,
  windowsMs: number[],
  warmup: number,
): Promise<PredictEvalWindowResult[]> {
  let predictor: WindowPredictor = "last-value";
  if (model !== "last-value") {
    try {
      predictor = (await replayProviderFactory(model, modelsDir, trace.header))();
    } catch (e) {
      if (e instanceof ModelError) throw new CliError(e.message, ExitCode.BadInput);
      throw e;
    }
  }
  const scores = await evaluateWindows(trace, predictor, { windowsMs, warmup });
  return scores.filter((s) => s.points > 0).map((s) => ({
    trace: file,
    model,
    window_ms: s.windowMs,
    f1: round4(s.f1),
    precision: round4(s.precision),
    recall: round4(s.recall),
    count_ape_median: round4(s.countApeMedian),
  }));
}

function printWindows(rows: PredictEvalWindowResult[]): void {
  console.log("\nround windows (per page, p >= 0.5):");
  const head = ["trace", "model", "window_ms", "f1", "precision", "recall", "count_ape_median"];
  const cells = rows.map((r) => [
    r.trace.split("/").pop()!,
    r.model,
    String(r.window_ms),
    r.f1.toFixed(3),
    r.precision.toFixed(3),
    r.recall.toFixed(3),
    r.count_ape_median.toFixed(3),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) => c.map((v, i) => (i < 2 ? v.padEnd : v.padStart).call(v, widths[i]));
  console.log(line(head).join("  "));
  for (const c of cells) console.log(line(c).join("  "));
}

function isPythonBaseline(mode: string): mode is PythonBaseline {
  return (PYTHON_BASELINES as readonly string[]).includes(mode);
}

function workloadOf(trace: Trace, file: string): string {
  return trace.header.workload?.name ?? file.split("/").pop()!.split(/[-.]/)[0];
}

async function pythonBaselines(
  opts: PredictEvalOptions,
  models: PythonBaseline[],
  workloads: Map<string, string>,
  warmup: number,
): Promise<PredictEvalResult[]> {
  const train = new Set((opts.trainTraces ?? corpusTraces(opts.modelsDir)).map(realPath));
  const scored = new Set([...workloads.keys()].map(realPath));
  const traces = [...workloads].map(([file, workload]) => ({
    file,
    workload,
    load: () => loadTrace(file, warmup),
    evaluate: true,
    train: train.has(realPath(file)),
  }));
  for (const file of train) {
    if (scored.has(file)) continue;
    const workload = workloadOf(await readTraceArgument(file), file); // loaded again when used
    traces.push({
      file,
      workload,
      load: () => readTraceArgument(file),
      evaluate: false,
      train: true,
    });
  }
  try {
    return await runPythonBaselines(traces, models, {
      script: `${opts.modelsDir}/baselines.py`,
      python: Deno.env.get("U2CM_PYTHON") || "/usr/bin/python3",
      warmup,
    });
  } catch (e) {
    if (e instanceof BaselineError) {
      throw new CliError(
        e.message,
        e.kind === "environment" ? ExitCode.Environment : ExitCode.Failure,
      );
    }
    throw e;
  }
}

function realPath(file: string): string {
  try {
    return Deno.realPathSync(file);
  } catch {
    return file;
  }
}

function corpusTraces(modelsDir: string): string[] {
  const dir = `${modelsDir}/corpus`;
  try {
    return [...Deno.readDirSync(dir)].filter((e) => e.name.endsWith(".u2ct.gz"))
      .map((e) => `${dir}/${e.name}`).sort();
  } catch {
    throw new CliError(
      `${dir}: no training corpus for random-forest; pass --train-traces FILES`,
      ExitCode.BadInput,
    );
  }
}

async function loadTrace(file: string, warmup: number): Promise<Trace> {
  const trace = await readTraceArgument(file);
  if (trace.rounds.length < warmup + 2) {
    throw new CliError(
      `${file}: trace has ${trace.rounds.length} rounds; scoring needs at least ${warmup + 2} ` +
        `(--warmup ${warmup} plus one predicted round)`,
      ExitCode.BadInput,
    );
  }
  return trace;
}

async function modelFor(
  dir: string,
  kind: ModelKind,
  workload: string,
  cache: Map<string, OnnxModel>,
  trace: Trace,
  traceFile: string,
): Promise<OnnxModel> {
  let model: OnnxModel;
  try {
    const file = heldOutModelFile(dir, kind, workload);
    model = cache.get(file) ?? await loadModel(file);
    cache.set(file, model);
  } catch (e) {
    if (e instanceof ModelError) throw new CliError(e.message, ExitCode.BadInput);
    throw e;
  }
  if (trace.header.pageSize !== 4096) {
    throw new CliError(
      `${traceFile}: page size ${trace.header.pageSize}; the models were trained on 4096-byte pages`,
      ExitCode.BadInput,
    );
  }
  if (trace.header.featureNames.length !== model.meta.featureCount) {
    throw new CliError(
      `${traceFile}: trace has ${trace.header.featureNames.length} features, model ${model.file} ` +
        `expects ${model.meta.featureCount} (record the trace with this u2cm version)`,
      ExitCode.BadInput,
    );
  }
  return model;
}

function round4(v: number): number {
  return Math.round(v * 10000) / 10000;
}

function printTable(rows: PredictEvalResult[]): void {
  const head = ["trace", "model", "h", "f1", "precision", "recall", "accuracy", "count_mape"];
  const cells = rows.map((r) => [
    r.trace.split("/").pop()!,
    r.model,
    String(r.horizon),
    r.f1.toFixed(3),
    r.precision.toFixed(3),
    r.recall.toFixed(3),
    r.accuracy.toFixed(4),
    r.count_mape.toFixed(3),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) => c.map((v, i) => (i < 2 ? v.padEnd : v.padStart).call(v, widths[i]));
  console.log(line(head).join("  "));
  for (const c of cells) console.log(line(c).join("  "));
}
