/**
 * Small shared codecs: varints, CRC-32.
 *
 * @module
 */
export * from "./varint.ts";
export { crc32 } from "./crc32.ts";
export { decodeBase64, encodeBase64 } from "./base64.ts";
export { exists, isFile } from "./fs.ts";
