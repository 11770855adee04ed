/**
 * Binary frames of the peer protocol: the layout (frame_format.ts), encoders (frame_encode.ts) and
 * the checking decoder (frame_decode.ts), re-exported.
 *
 * @module
 */
export * from "./frame_format.ts";
export * from "./frame_encode.ts";
export * from "./frame_decode.ts";
