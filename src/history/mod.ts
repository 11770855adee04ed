/**
 * History: per-round system/process features and the trace recorder that stores rounds.
 *
 * @module
 */
export * from "./features.ts";
export * from "./recorder.ts";
