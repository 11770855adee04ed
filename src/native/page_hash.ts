/**
 * The one page-hash module: the 128-bit page hash of the native shim (`u2cm_hash_page`), used for
 * page identity (what the tracker computes, what the source's ledger and page manifest record,
 * what the destination checks) and for frame integrity. Runs in C through FFI; a BigInt implementation of the
 * same function takes over when the shim cannot be loaded, so both ends always agree.
 *
 * @example
 * ```ts
 * const hashes = pageHashes(new Uint8Array(2 * 4096)); // 32 bytes: 16 per page
 * ```
 *
 * @module
 */
import { shim } from "./ffi.ts";

/** Bytes per page. */
export const PAGE_SIZE = 4096;
/** Bytes per page hash. */
export const HASH_BYTES = 16;

let native: ReturnType<typeof shim> | null | undefined;

function loadNative(): ReturnType<typeof shim> | null {
  if (native === undefined) {
    try {
      native = Deno.env.get("U2CM_PEER_TS_HASH") === "1" ? null : shim();
    } catch {
      native = null;
    }
  }
  return native;
}

/** Whether hashing runs in the native shim (true) or the TypeScript fallback. */
export function nativeHashing(): boolean {
  return loadNative() !== null;
}

/**
 * The hashes of each 4 KiB page of `data` (whose length must be a multiple of 4096): 16 bytes per
 * page, the shim's two 64-bit words in little-endian order.
 */
export function pageHashes(data: Uint8Array): Uint8Array {
  if (data.length % PAGE_SIZE !== 0) throw new RangeError("page data is not whole pages");
  const pages = data.length / PAGE_SIZE;
  const out = new BigUint64Array(pages * 2);
  const lib = loadNative();
  if (lib) {
    lib.u2cm_hash_pages(data as Uint8Array<ArrayBuffer>, pages, out);
  } else {
    for (let i = 0; i < pages; i++) {
      hashTs(data.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE), out, i * 2);
    }
  }
  return new Uint8Array(out.buffer);
}

/**
 * A 16-byte integrity hash of several byte ranges taken as one message: the page hash applied to
 * their concatenation zero-padded to a multiple of 32 bytes, with the unpadded length mixed in
 * through a trailer.
 */
export function integrityHash(parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const padded = new Uint8Array(Math.ceil((length + 8) / 32) * 32);
  let o = 0;
  for (const p of parts) {
    padded.set(p, o);
    o += p.length;
  }
  new DataView(padded.buffer).setFloat64(padded.length - 8, length, true);
  const out = new BigUint64Array(2);
  const lib = loadNative();
  if (lib) lib.u2cm_hash_page(padded, padded.length, out);
  else hashTs(padded, out, 0);
  return new Uint8Array(out.buffer);
}

/** Whether two byte arrays are equal. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// The BigInt twin of shim.c's u2cm_hash_page; kept bit-for-bit equal (tests compare them).
const M = (1n << 64n) - 1n;
const P1 = 0x9E3779B185EBCA87n;
const P2 = 0xC2B2AE3D27D4EB4Fn;
const P3 = 0x165667B19E3779F9n;
const P4 = 0x85EBCA77C2B2AE63n;

const rotl = (x: bigint, r: bigint) => ((x << r) | (x >> (64n - r))) & M;

function fmix(k: bigint): bigint {
  k ^= k >> 33n;
  k = (k * 0xff51afd7ed558ccdn) & M;
  k ^= k >> 33n;
  k = (k * 0xc4ceb9fe1a85ec53n) & M;
  k ^= k >> 33n;
  return k;
}

function round(acc: bigint, input: bigint): bigint {
  acc = (acc + input * P2) & M;
  acc = rotl(acc, 31n);
  return (acc * P1) & M;
}

/** Hash `data` (length a multiple of 32) into out[at], out[at + 1] in TypeScript. */
export function hashTs(data: Uint8Array, out: BigUint64Array, at: number): void {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const len = BigInt(data.length);
  let a = (P1 + P2) & M, b = P2, c = 0n, d = (M + 1n - P1) & M;
  for (let i = 0; i + 32 <= data.length; i += 32) {
    a = round(a, view.getBigUint64(i, true));
    b = round(b, view.getBigUint64(i + 8, true));
    c = round(c, view.getBigUint64(i + 16, true));
    d = round(d, view.getBigUint64(i + 24, true));
  }
  out[at] = fmix((rotl(a, 1n) + rotl(b, 7n) + rotl(c, 12n) + rotl(d, 18n) + len) & M);
  out[at + 1] = fmix(
    ((a * P3) & M) ^ rotl(b, 23n) ^ ((c * P4) & M) ^ rotl(d, 41n) ^ ((len << 32n) & M),
  );
}
