/**
 * The u2cm trace format: types, writer, reader.
 *
 * @module
 */
export * from "./types.ts";
export { encodeEnd, encodeHeader, encodeRound, encodeTrace, TRACE_MAGIC } from "./encode.ts";
export { decodeTrace, type DecodeTraceOptions, readTraceFile } from "./decode.ts";
export { decodePageSet, encodePageSet } from "./pageset_codec.ts";
export { summarizeTrace, type TraceSummary } from "./summary.ts";
