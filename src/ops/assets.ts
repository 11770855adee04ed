/**
 * Files that ship with u2cm: the deployment models. From a source checkout they are the
 * repository's `models/`; in a compiled binary (`deno task build`) the same path resolves inside
 * the binary, where they are embedded — so a default of {@linkcode bundledModelsDir} works in both.
 *
 * @module
 */

/**
 * The directory of the bundled models (`u2c-predictor.onnx`, `lstm.onnx` and their sidecars):
 * `$U2CM_MODELS` when set, else the one shipped with this u2cm.
 *
 * @example
 * ```ts
 * import { bundledModelsDir } from "./assets.ts";
 * console.log(`${bundledModelsDir()}/u2c-predictor.onnx`);
 * ```
 */
export function bundledModelsDir(): string {
  return Deno.env.get("U2CM_MODELS") || new URL("../../models", import.meta.url).pathname;
}
