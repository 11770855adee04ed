/**
 * The two-phase dirty-page predictor: page histories, phase 1 (stability + data shift), the
 * phase-2 ONNX model, the online predictor and trace evaluation.
 *
 * @module
 */
export * from "./history.ts";
export * from "./phase1.ts";
export * from "./onnx.ts";
export * from "./online.ts";
export * from "./evaluate.ts";
export * from "./loo.ts";
export * from "./pattern_table.ts";
export * from "./baselines.ts";
export * from "./frequencies.ts";
export * from "./provider.ts";
export * from "./moving_window.ts";
export * from "./model_provider.ts";
export * from "./tick_provider.ts";
export * from "./providers.ts";
export * from "./window_rates.ts";
export * from "./window_model.ts";
export * from "./window_eval.ts";
