/**
 * The offline Python baselines of `u2cm predict-eval` — `random-forest` (python3-sklearn) and
 * `arima` on dirty counts (python3-statsmodels): write the traces' page-pattern tables
 * ({@linkcode patternTable}) to a temporary directory, run `models/baselines.py` with Debian's
 * `/usr/bin/python3`, and return its result rows.
 *
 * @module
 */
import type { Trace } from "../trace/types.ts";
import { patternTable } from "./pattern_table.ts";
import type { PredictEvalResult } from "./evaluate.ts";

/** Baselines computed by `models/baselines.py`. */
export const PYTHON_BASELINES = ["random-forest", "arima"] as const;

/** A Python baseline name. */
export type PythonBaseline = typeof PYTHON_BASELINES[number];

/** Debian package each baseline needs. */
export const BASELINE_PACKAGES: Record<PythonBaseline, { module: string; deb: string }> = {
  "random-forest": { module: "sklearn", deb: "python3-sklearn" },
  arima: { module: "statsmodels", deb: "python3-statsmodels" },
};

/** One trace given to the baselines. */
export interface BaselineTrace {
  /** The trace file as it appears in the result rows. */
  file: string;
  /** Its workload (a trace is never scored by a model trained on its workload). */
  workload: string;
  /** Loads the trace (called once). */
  load: () => Promise<Trace>;
  /** Score this trace. */
  evaluate: boolean;
  /** Use this trace as training data for workloads other than its own. */
  train: boolean;
}

/** Thrown when the Python side is missing (`environment`) or fails (`failure`). */
export class BaselineError extends Error {
  /**
   * @param message what went wrong and how to fix it
   * @param kind `environment` (interpreter or Debian package missing) or `failure`
   */
  constructor(message: string, readonly kind: "environment" | "failure") {
    super(message);
    this.name = "BaselineError";
  }
}

/** Options of {@linkcode runPythonBaselines}. */
export interface RunBaselinesOptions {
  /** `models/baselines.py`. */
  script: string;
  /** Interpreter. @default "/usr/bin/python3" */
  python?: string;
  /** Rounds observed before scoring. @default 16 */
  warmup?: number;
}

/**
 * Check that the interpreter and the Debian packages of `models` are present.
 *
 * @param models baselines wanted
 * @param python interpreter
 */
export async function checkBaselineEnvironment(
  models: readonly PythonBaseline[],
  python = "/usr/bin/python3",
): Promise<void> {
  for (const m of models) {
    const { module, deb } = BASELINE_PACKAGES[m];
    let ok = false;
    try {
      const out = await new Deno.Command(python, {
        args: ["-c", `import ${module}`],
        stdout: "null",
        stderr: "null",
      }).output();
      ok = out.success;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new BaselineError(
          `${m} needs ${python} (Debian package python3); install it with apt-get install python3`,
          "environment",
        );
      }
      throw e;
    }
    if (!ok) {
      throw new BaselineError(
        `${m} needs the Debian package ${deb} for ${python}; install it with apt-get install ${deb}`,
        "environment",
      );
    }
  }
}

/**
 * Run the Python baselines on `traces` and return their result rows.
 *
 * @param traces traces to score and to train on
 * @param models baselines to run
 * @param options script, interpreter, warm-up
 */
export async function runPythonBaselines(
  traces: BaselineTrace[],
  models: readonly PythonBaseline[],
  options: RunBaselinesOptions,
): Promise<PredictEvalResult[]> {
  if (models.length === 0) return [];
  const python = options.python ?? "/usr/bin/python3";
  try {
    await Deno.stat(options.script);
  } catch {
    throw new BaselineError(`${options.script}: baseline script not found`, "environment");
  }
  await checkBaselineEnvironment(models, python);
  const dir = await Deno.makeTempDir({ prefix: "u2cm-baselines-" });
  try {
    const manifest = [];
    for (const [i, t] of traces.entries()) {
      const table = patternTable(await t.load(), options.warmup ?? 16);
      const name = `t${i}`;
      await Deno.writeFile(`${dir}/${name}.rows.u32`, bytes(table.rows));
      await Deno.writeFile(`${dir}/${name}.rounds.u32`, bytes(table.rounds));
      await Deno.writeFile(`${dir}/${name}.counts.u32`, bytes(table.counts));
      manifest.push({
        name,
        trace: t.file,
        workload: t.workload,
        eval: t.evaluate,
        train: t.train,
      });
    }
    await Deno.writeTextFile(`${dir}/manifest.json`, JSON.stringify({ traces: manifest }));
    const out = await new Deno.Command(python, {
      args: [options.script, "--tables", dir, "--models", models.join(",")],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(out.stderr).trim();
    if (!out.success) {
      const last = err.split("\n").slice(-3).join("\n");
      throw new BaselineError(
        `${options.script} failed (exit ${out.code}): ${last}`,
        out.code === 5 ? "environment" : "failure",
      );
    }
    return JSON.parse(new TextDecoder().decode(out.stdout)).results as PredictEvalResult[];
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

function bytes(a: Uint32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
