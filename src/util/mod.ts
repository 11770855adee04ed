/**
 * Small shared codecs and helpers: varints, CRC-32, base64, file checks, binary search.
 *
 * @module
 */
export * from "./varint.ts";
export { crc32 } from "./crc32.ts";
export { decodeBase64, encodeBase64 } from "./base64.ts";
export { exists, isFile } from "./fs.ts";
export { inRuns, type RunBounds } from "./in_runs.ts";
export { lowerBound } from "./lower_bound.ts";
