/**
 * The trace-driven migration simulator: timeline, prediction hook, replay, oracle, comparison.
 *
 * @module
 */
export * from "./timeline.ts";
export * from "./bitmap.ts";
export * from "./page_index.ts";
export * from "./future.ts";
export * from "./simulate.ts";
export * from "./oracle.ts";
export * from "./compare.ts";
export * from "./link.ts";
export * from "./costs.ts";
