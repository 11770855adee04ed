/**
 * Stop-and-copy policies: the interface, the baselines, u2c, and the registry.
 *
 * @module
 */
export * from "./types.ts";
export * from "./baselines.ts";
export * from "./u2c.ts";
export * from "./registry.ts";
export { withRoundCap } from "./cap.ts";
