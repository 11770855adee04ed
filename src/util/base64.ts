/**
 * Base64 (RFC 4648, with padding) for binary payloads in JSON files and messages. Uses the
 * runtime's `Uint8Array.prototype.toBase64` / `Uint8Array.fromBase64` where present (about 100×
 * faster than building a binary string: 9 ms instead of 0.9 s for a 2 GiB tree's 8 MiB of page
 * hashes), else a portable fallback with the same output.
 *
 * @example
 * ```ts
 * decodeBase64(encodeBase64(new Uint8Array([1, 2, 3]))); // Uint8Array [1, 2, 3]
 * ```
 *
 * @module
 */

interface NativeBase64 {
  toBase64?: (this: Uint8Array) => string;
}
const native = (Uint8Array.prototype as unknown as NativeBase64).toBase64;
const nativeFrom = (Uint8Array as unknown as { fromBase64?: (s: string) => Uint8Array })
  .fromBase64;

/** Encode bytes as base64 text. */
export function encodeBase64(bytes: Uint8Array): string {
  if (native) return native.call(bytes);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** Decode base64 text; throws on malformed input. */
export function decodeBase64(text: string): Uint8Array {
  if (nativeFrom) return nativeFrom(text);
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}
