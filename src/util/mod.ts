/**
 * Small shared codecs: varints, CRC-32.
 *
 * @module
 */
export * from "./varint.ts";
export { crc32 } from "./crc32.ts";
