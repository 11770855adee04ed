/**
 * The page-batch codec of the native shim (codec.c: LZ4 block format) through FFI: compress a
 * batch of pages before it crosses a slow link, decompress it on arrival. Loads the same library
 * as {@linkcode shim} (from `$U2CM_SHIM`, the compiled binary, or the cache).
 *
 * @example
 * ```ts
 * const packed = lz4Compress(pages);
 * const back = lz4Decompress(packed, pages.length); // equal to pages
 * ```
 *
 * @module
 */
import { ensureShim, hostArch } from "./build.ts";
import { embeddedShim } from "./embedded.ts";

const SYMBOLS = {
  u2cm_lz4_bound: { parameters: ["u32"], result: "i64" },
  u2cm_lz4_compress: { parameters: ["buffer", "u32", "buffer", "u32"], result: "i64" },
  u2cm_lz4_decompress: { parameters: ["buffer", "u32", "buffer", "u32"], result: "i64" },
} as const satisfies Deno.ForeignLibraryInterface;

let lib: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] | undefined;

function codec(): Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] {
  lib ??= Deno.dlopen(
    Deno.env.get("U2CM_SHIM") ?? embeddedShim() ?? ensureShim(hostArch()),
    SYMBOLS,
  ).symbols;
  return lib;
}

/** Raised for compressed bytes that do not decode to the expected size. */
export class CodecError extends Error {
  /** @param message what is wrong */
  constructor(message: string) {
    super(message);
    this.name = "CodecError";
  }
}

/** Compress `data` (LZ4 block); the result may be larger than the input for random data. */
export function lz4Compress(data: Uint8Array): Uint8Array {
  const c = codec();
  const out = new Uint8Array(Number(c.u2cm_lz4_bound(data.length)));
  const n = Number(c.u2cm_lz4_compress(data, data.length, out, out.length));
  if (n < 0) throw new CodecError("compression output overflow");
  return out.subarray(0, n);
}

/** Decompress an LZ4 block that must decode to exactly `size` bytes. */
export function lz4Decompress(packed: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(size);
  const n = Number(codec().u2cm_lz4_decompress(packed, packed.length, out, size));
  if (n !== size) {
    throw new CodecError(
      n < 0 ? "malformed LZ4 block" : `LZ4 block decodes to ${n} bytes, expected ${size}`,
    );
  }
  return out;
}
