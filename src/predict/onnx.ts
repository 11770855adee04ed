/**
 * Phase-2 model inference with onnxruntime-web's wasm backend (one thread), batched over all the
 * pages of a round. A model is an `.onnx` file plus a sidecar `.json` ({@linkcode ModelMeta}).
 *
 * Model contract: input `x` float32 `[N, window, 5]` (see `writeWindow`), input `f` float32
 * `[N, featureCount]` (normalised features; models that ignore it omit the input), output `p`
 * float32 `[N, horizon]` = dirty probability for each of the next `horizon` rounds.
 *
 * @module
 */
import type * as Ort from "onnxruntime-web";
import { z } from "zod";
import { CHANNELS } from "./history.ts";

/** Sidecar facts about a model file. */
export interface ModelMeta {
  /** `u2c` (LSTM + attention + features) or `lstm` (plain LSTM over the page's own bits). */
  kind: string;
  /** History time steps per page. */
  window: number;
  /** Neighbour pages on each side. */
  radius: number;
  /** Rounds predicted. */
  horizon: number;
  /** Feature values per page input. */
  featureCount: number;
  /** Workloads the model was trained on. */
  trainedOn: string[];
  /**
   * Decision threshold per horizon step (a probability at or above it counts as dirty), chosen
   * on the training workloads; absent in older sidecars (then 0.5). A single number applies to
   * every step.
   */
  threshold?: number | number[];
  /**
   * When set, phase 2 blends the model with the container's own online pattern frequencies
   * (`PatternFrequencies`): the model's probability counts as this many pseudo-observations.
   * Absent in older sidecars (then the model's probability is used as is).
   */
  onlinePrior?: number;
}

const MetaSchema = z.object({
  kind: z.string(),
  window: z.number().int().min(1).max(32),
  radius: z.number().int().min(0).max(64),
  horizon: z.number().int().min(1).max(16),
  featureCount: z.number().int().min(0).max(256),
  trainedOn: z.array(z.string()),
  threshold: z.union([
    z.number().gt(0).lt(1),
    z.array(z.number().gt(0).lt(1)).min(1).max(16),
  ]).optional(),
  onlinePrior: z.number().min(0).max(1e6).optional(),
});

/**
 * The decision threshold of a model for each of `horizon` steps (0.5 when the sidecar has none;
 * a list shorter than the horizon repeats its last value).
 *
 * @param meta the model's sidecar facts
 * @param horizon steps wanted
 */
export function decisionThresholds(meta: ModelMeta | undefined, horizon: number): number[] {
  const t = meta?.threshold;
  const list = t === undefined ? [0.5] : typeof t === "number" ? [t] : t;
  return Array.from({ length: horizon }, (_, s) => list[Math.min(s, list.length - 1)]);
}

/** Thrown when a model file is missing or malformed; names the file and the problem. */
export class ModelError extends Error {
  /**
   * @param file the model file
   * @param problem what is wrong
   */
  constructor(readonly file: string, readonly problem: string) {
    super(`${file}: ${problem}`);
    this.name = "ModelError";
  }
}

/** A loaded phase-2 model. */
export interface OnnxModel {
  /** The sidecar facts. */
  meta: ModelMeta;
  /** The model file. */
  file: string;
  /**
   * Run the model on `n` pages.
   *
   * @param x `n × window × 5` inputs
   * @param f `n × featureCount` features
   * @param n pages in the batch
   * @returns `n × horizon` probabilities
   */
  run(x: Float32Array, f: Float32Array, n: number): Promise<Float32Array>;
}

let runtime: Promise<typeof Ort> | undefined;

/** onnxruntime-web, loaded on first use (it is large; commands that never predict skip it). */
function onnxRuntime(): Promise<typeof Ort> {
  runtime ??= import("onnxruntime-web").then((ort) => {
    ort.env.wasm.numThreads = 1;
    ort.env.logLevel = "error";
    return ort;
  });
  return runtime;
}

/**
 * Load a model and its sidecar (`model.onnx` → `model.json`).
 *
 * @param file path of the `.onnx` file
 */
export async function loadModel(file: string): Promise<OnnxModel> {
  const ort = await onnxRuntime();
  const metaFile = file.replace(/\.onnx$/, "") + ".json";
  let bytes: Uint8Array, metaText: string;
  try {
    bytes = await Deno.readFile(file);
    metaText = await Deno.readTextFile(metaFile);
  } catch (e) {
    const which = bytes! === undefined ? file : metaFile;
    const problem = e instanceof Deno.errors.NotFound
      ? "model file not found"
      : `cannot read the model: ${(e as Error).message}`;
    throw new ModelError(which, which === metaFile ? `${problem} (the .json sidecar)` : problem);
  }
  let meta: ModelMeta;
  try {
    meta = MetaSchema.parse(JSON.parse(metaText));
  } catch (e) {
    throw new ModelError(metaFile, `malformed model sidecar: ${(e as Error).message}`);
  }
  let session: Ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
  } catch (e) {
    throw new ModelError(file, `not a loadable ONNX model: ${(e as Error).message}`);
  }
  if (!session.inputNames.includes("x") || !session.outputNames.includes("p")) {
    throw new ModelError(file, `model needs input "x" and output "p"`);
  }
  const wantsF = session.inputNames.includes("f");
  return {
    meta,
    file,
    async run(x, f, n) {
      if (n === 0) return new Float32Array(0);
      const feeds: Record<string, Ort.Tensor> = {
        x: new ort.Tensor("float32", x.subarray(0, n * meta.window * CHANNELS), [
          n,
          meta.window,
          CHANNELS,
        ]),
      };
      if (wantsF) {
        feeds.f = new ort.Tensor("float32", f.subarray(0, n * meta.featureCount), [
          n,
          meta.featureCount,
        ]);
      }
      const out = await session.run(feeds);
      return out.p.data as Float32Array;
    },
  };
}
