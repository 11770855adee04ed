/**
 * The phase-2 window model: for a page, the chance of being written within the next round window
 * of each class (100 ms … 30 s), from its history window, the round's features and its long-run
 * inputs (time since its last write, its write share, its mapping's age). One ONNX file
 * (`u2c-windows.onnx`, opset 17, onnxruntime-web wasm) plus a sidecar.
 *
 * Model contract: inputs `x` float32 `[N, window, 5]` (see `writeWindow`), `f` float32
 * `[N, featureCount]`, `g` float32 `[N, 4]` ({@linkcode longRunInputs}); output `w` float32
 * `[N, K]` = the cumulative hazard −ln(1 − P(written within class k)), non-decreasing in k.
 *
 * @module
 */
import type * as Ort from "onnxruntime-web";
import { z } from "zod";
import { CHANNELS, type MappingHistory, type PageHistory, writeWindow } from "./history.ts";
import { ModelError } from "./onnx.ts";

/** The round-window classes of the window model, in ms. */
export const WINDOW_CLASSES_MS = [100, 200, 500, 1000, 2000, 4000, 8000, 16000, 30000];

/** Long-run inputs per page. */
export const LONG_RUN_INPUTS = 4;

const LOG_SCALE = Math.log1p(600);

/**
 * Write a page's long-run inputs: log time since its last write (or since its mapping appeared,
 * when never written) in 100 ms units / ln 601; its write share (intervals written per 100 ms of
 * its mapping's life, ≤ 1); log age of the mapping (same scale); 1 when never written.
 *
 * @param history the page histories (their clock)
 * @param h the page's mapping
 * @param page page index
 * @param out destination
 * @param offset first element written
 */
export function longRunInputs(
  history: PageHistory,
  h: MappingHistory,
  page: number,
  out: Float32Array,
  offset: number,
): void {
  const life = Math.max(0, history.nowMs - h.bornMs);
  const w = h.writes[page];
  const since = w === 0 ? life : Math.max(0, history.nowMs - h.lastWriteMs[page]);
  out[offset] = Math.log1p(since / 100) / LOG_SCALE;
  out[offset + 1] = Math.min(1, w * 100 / Math.max(100, life));
  out[offset + 2] = Math.log1p(life / 100) / LOG_SCALE;
  out[offset + 3] = w === 0 ? 1 : 0;
}

/** Sidecar facts of a window model. */
export interface WindowModelMeta {
  /** `u2c-windows`. */
  kind: string;
  /** History time steps per page. */
  window: number;
  /** Neighbour pages on each side. */
  radius: number;
  /** Feature values per page input. */
  featureCount: number;
  /** The window classes, ms (the output's columns). */
  windowsMs: number[];
  /** Workloads the model was trained on. */
  trainedOn: string[];
  /** Evidence (page-intervals of a class) the model's answer is worth against the online rates. */
  prior: number;
}

const MetaSchema = z.object({
  kind: z.literal("u2c-windows"),
  window: z.number().int().min(1).max(32),
  radius: z.number().int().min(0).max(64),
  featureCount: z.number().int().min(0).max(256),
  windowsMs: z.array(z.number().positive()).min(1).max(32),
  trainedOn: z.array(z.string()),
  prior: z.number().min(0),
});

/** Rows of one batched run: pages with identical inputs share one. */
export interface WindowRows {
  /**
   * Add a page; returns its row.
   *
   * @param h the page's mapping
   * @param page page index
   */
  add(h: MappingHistory, page: number): number;
  /** Run the model over the rows: `K` cumulative hazards per row. */
  run(): Promise<Float32Array>;
}

/** A loaded window model. */
export interface WindowModel {
  /** The sidecar facts. */
  meta: WindowModelMeta;
  /** The model file. */
  file: string;
  /**
   * Start a batch for the current state of `history`.
   *
   * @param history the page histories
   */
  begin(history: PageHistory): WindowRows;
}

/**
 * Load a window model and its sidecar (`u2c-windows.onnx` → `u2c-windows.json`).
 *
 * @param file the `.onnx` file
 * @example
 * ```ts
 * const model = await loadWindowModel("models/u2c-windows.onnx");
 * ```
 */
export async function loadWindowModel(file: string): Promise<WindowModel> {
  const ort: typeof Ort = await import("onnxruntime-web");
  ort.env.wasm.numThreads = 1;
  ort.env.logLevel = "error";
  const metaFile = file.replace(/\.onnx$/, "") + ".json";
  let bytes: Uint8Array, meta: WindowModelMeta;
  try {
    bytes = await Deno.readFile(file);
  } catch (e) {
    throw new ModelError(file, `cannot read the window model: ${(e as Error).message}`);
  }
  try {
    meta = MetaSchema.parse(JSON.parse(await Deno.readTextFile(metaFile)));
  } catch (e) {
    throw new ModelError(metaFile, `bad window-model sidecar: ${(e as Error).message}`);
  }
  let session: Ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
  } catch (e) {
    throw new ModelError(file, `not a loadable ONNX model: ${(e as Error).message}`);
  }
  for (const name of ["x", "f", "g"]) {
    if (!session.inputNames.includes(name)) throw new ModelError(file, `needs input "${name}"`);
  }
  if (!session.outputNames.includes("w")) throw new ModelError(file, `needs output "w"`);
  const K = meta.windowsMs.length, W = meta.window, F = meta.featureCount;
  return {
    meta,
    file,
    begin(history) {
      const rowOf = new Map<string, number>();
      let x = new Float32Array(1024 * W * CHANNELS);
      let g = new Float32Array(1024 * LONG_RUN_INPUTS);
      let n = 0;
      const mask = W >= 32 ? 0xffffffff : (1 << W) - 1;
      const tmp = new Float32Array(LONG_RUN_INPUTS);
      return {
        add(h, page) {
          longRunInputs(history, h, page, tmp, 0);
          // Quantised long-run inputs (1/64) and the window's bits: identical keys, one row.
          const lo = Math.max(0, page - meta.radius),
            hi = Math.min(h.pages - 1, page + meta.radius);
          let key = `${Math.min(h.age, W)}:${page - lo}:${hi - lo}`;
          for (let q = lo; q <= hi; q++) key += `:${h.dirty[q] & mask}:${h.access[q] & mask}`;
          for (let i = 0; i < LONG_RUN_INPUTS; i++) {
            tmp[i] = Math.round(tmp[i] * 64) / 64;
            key += `:${tmp[i]}`;
          }
          let row = rowOf.get(key);
          if (row !== undefined) return row;
          row = n++;
          rowOf.set(key, row);
          if (n * W * CHANNELS > x.length) {
            const bigger = new Float32Array(x.length * 2);
            bigger.set(x);
            x = bigger;
            const g2 = new Float32Array(g.length * 2);
            g2.set(g);
            g = g2;
          }
          writeWindow(h, page, W, meta.radius, x, row * W * CHANNELS);
          g.set(tmp, row * LONG_RUN_INPUTS);
          return row;
        },
        async run() {
          if (n === 0) return new Float32Array(0);
          const f = new Float32Array(n * F);
          for (let r = 0; r < n; r++) f.set(history.features.subarray(0, F), r * F);
          const out = await session.run({
            x: new ort.Tensor("float32", x.subarray(0, n * W * CHANNELS), [n, W, CHANNELS]),
            f: new ort.Tensor("float32", f, [n, F]),
            g: new ort.Tensor("float32", g.subarray(0, n * LONG_RUN_INPUTS), [n, LONG_RUN_INPUTS]),
          });
          const w = out.w.data as Float32Array;
          if (w.length !== n * K) throw new ModelError(file, `output "w" is not [${n}, ${K}]`);
          return w;
        },
      };
    },
  };
}

/**
 * The model's cumulative hazard at `ms`, interpolated linearly between the classes (0 at 0 ms,
 * the last segment's slope beyond the last class).
 *
 * @param h `K` cumulative hazards of one row
 * @param windowsMs the classes
 * @param ms window length
 */
export function hazardAt(h: ArrayLike<number>, windowsMs: number[], ms: number): number {
  if (ms <= 0) return 0;
  let prevMs = 0, prevH = 0;
  for (let k = 0; k < windowsMs.length; k++) {
    if (ms <= windowsMs[k]) {
      return prevH + (h[k] - prevH) * (ms - prevMs) / (windowsMs[k] - prevMs);
    }
    prevMs = windowsMs[k];
    prevH = h[k];
  }
  const K = windowsMs.length;
  const slope = K > 1 ? (h[K - 1] - h[K - 2]) / (windowsMs[K - 1] - windowsMs[K - 2]) : 0;
  return h[K - 1] + Math.max(0, slope) * (ms - windowsMs[K - 1]);
}
