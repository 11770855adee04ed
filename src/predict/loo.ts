/**
 * Leave-one-workload-out model choice: a trace of workload W is only ever scored with a model
 * that never saw W — `DIR/loo/<kind>-no-<W>.onnx`, or the full model when W is not in its
 * `trainedOn` list (a workload new to the corpus).
 *
 * @module
 */
import { ModelError } from "./onnx.ts";
import { isFile as exists } from "../util/fs.ts";

/** Model kinds that need a model file. */
export type ModelKind = "u2c" | "lstm" | "u2c-windows";

/**
 * The file of the full (deployment) model of a kind.
 *
 * @param dir models directory
 * @param kind model kind
 */
export function fullModelFile(dir: string, kind: ModelKind): string {
  return `${dir}/${kind === "u2c" ? "u2c-predictor" : kind}.onnx`;
}

/**
 * Pick the model file to score a trace of `workload` with, never one trained on it.
 *
 * @param dir models directory
 * @param kind model kind
 * @param workload the trace's workload name
 */
export function heldOutModelFile(dir: string, kind: ModelKind, workload: string): string {
  const loo = `${dir}/loo/${kind}-no-${workload}.onnx`;
  if (exists(loo)) return loo;
  const full = fullModelFile(dir, kind);
  let trainedOn: string[];
  try {
    trainedOn = JSON.parse(Deno.readTextFileSync(full.replace(/\.onnx$/, ".json"))).trainedOn;
  } catch (e) {
    throw new ModelError(full, `cannot read the model sidecar: ${(e as Error).message}`);
  }
  if (!Array.isArray(trainedOn) || trainedOn.includes(workload)) {
    throw new ModelError(
      loo,
      `no model held out from workload "${workload}" (the full model was trained on it); ` +
        "run models/train.py --loo",
    );
  }
  return full;
}
