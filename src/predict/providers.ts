/**
 * Which prediction provider a policy gets: the factories the simulator (one fresh provider per
 * replay) and the live migration use.
 *
 * @module
 */
import type { TraceHeader } from "../trace/types.ts";
import { fullModelFile, heldOutModelFile } from "./loo.ts";
import { PredictorProvider } from "./model_provider.ts";
import { TickPredictorProvider } from "./tick_provider.ts";
import { MovingWindowProvider } from "./moving_window.ts";
import { createPredictor } from "./online.ts";
import { loadModel, ModelError } from "./onnx.ts";
import { loadWindowModel } from "./window_model.ts";
import type { PredictionProvider } from "./provider.ts";

/** Predictors a replay can give u2c and hybrid. */
export const PREDICTOR_NAMES = [
  "u2c",
  "u2c-ticks",
  "rates",
  "lstm",
  "phase1-only",
  "last-value",
  "window",
] as const;

/** One of {@linkcode PREDICTOR_NAMES}. */
export type PredictorName = (typeof PREDICTOR_NAMES)[number];

/**
 * The factory of the providers u2c and hybrid get when a trace is replayed: the two-phase
 * predictor with a model that never saw the trace's workload (or the deployment model for a
 * workload new to the corpus), a model-free predictor, or the moving-window frequency model.
 * Throws {@linkcode ModelError} for a missing model or one expecting other features.
 *
 * @param name predictor name
 * @param modelsDir directory with the models
 * @param header the header of the trace to be replayed
 * @example
 * ```ts
 * declare const trace: import("../trace/types.ts").Trace;
 * const factory = await replayProviderFactory("u2c", "models", trace.header);
 * const provider = factory(); // one per replay
 * ```
 */
export async function replayProviderFactory(
  name: PredictorName,
  modelsDir: string,
  header: Pick<TraceHeader, "featureNames" | "pageSize" | "workload">,
): Promise<() => PredictionProvider> {
  if (name === "window") return () => new MovingWindowProvider(20, 12);
  const featureCount = header.featureNames.length;
  const pageSize = header.pageSize;
  if (name === "phase1-only" || name === "last-value") {
    return () =>
      new TickPredictorProvider(
        createPredictor({ mode: name, featureCount, pageSize, horizon: 3 }),
      );
  }
  if (name === "rates") {
    return () => new PredictorProvider(createPredictor({ mode: "phase1-only", pageSize }));
  }
  const kind = name === "lstm" ? "lstm" : "u2c";
  if (name === "u2c") {
    const file = heldOutModelFile(modelsDir, "u2c-windows", header.workload?.name ?? "");
    const windowModel = await loadWindowModel(file);
    if (windowModel.meta.featureCount !== featureCount) {
      throw new ModelError(
        file,
        `trace has ${featureCount} features, the model expects ${windowModel.meta.featureCount} ` +
          "(record the trace with this u2cm version, or use --predictor window)",
      );
    }
    return () =>
      new PredictorProvider(createPredictor({ mode: "phase1-only", pageSize, featureCount }), {
        windowModel,
      });
  }
  const model = await loadModel(heldOutModelFile(modelsDir, kind, header.workload?.name ?? ""));
  if (model.meta.featureCount !== featureCount) {
    throw new ModelError(
      model.file,
      `trace has ${featureCount} features, the model expects ${model.meta.featureCount} ` +
        "(record the trace with this u2cm version, or use --predictor window)",
    );
  }
  return () => new TickPredictorProvider(createPredictor({ mode: kind, model, pageSize }));
}

/**
 * The provider of a live migration: the two-phase predictor with the deployment model. Throws
 * {@linkcode ModelError} when the model cannot be loaded or expects other features.
 *
 * @param modelsDir directory with the models
 * @param featureCount features the live sampler records
 * @example
 * ```ts
 * const provider = await liveProvider("models", 18);
 * ```
 */
export async function liveProvider(
  modelsDir: string,
  featureCount: number,
): Promise<PredictionProvider> {
  const file = fullModelFile(modelsDir, "u2c-windows");
  const windowModel = await loadWindowModel(file);
  if (windowModel.meta.featureCount !== featureCount) {
    throw new ModelError(
      file,
      `expects ${windowModel.meta.featureCount} features, not ${featureCount}`,
    );
  }
  return new PredictorProvider(createPredictor({ mode: "phase1-only", featureCount }), {
    windowModel,
  });
}
