/**
 * Building binary frames (layout in frame_format.ts). Each encoder has a `…Parts` form that returns
 * the frame as a short list of byte ranges whose concatenation is the frame: a small head the
 * encoder wrote (header, addresses, hashes) and the caller's data by reference, uncopied. A
 * transport lays the parts out in its own wire buffer in one pass (ws_codec.ts masks them there),
 * so page data is copied once between the engine's batch and the socket.
 *
 * @example
 * ```ts
 * const frame = encodePages({ stream: 1, seq: 1, pid: 42, addresses: [0x1000], data: new Uint8Array(4096) });
 * ```
 *
 * @module
 */
import {
  FileHeader,
  FLAG_FIN,
  FLAG_LAST,
  FLAG_LZ4,
  FrameKind,
  type HashesFrame,
  HashesHeader,
  type PagesFrame,
  PagesHeader,
  type TunnelFrame,
  TunnelHeader,
  writeAddresses,
  writeCommon,
  writeU64,
} from "./frame_format.ts";
import type { FileFrame } from "./frame_format.ts";
import { HASH_BYTES, integrityHash, PAGE_SIZE, pageHashes } from "../native/page_hash.ts";

/** What {@linkcode encodePages} takes. */
export type PagesInput = Omit<PagesFrame, "kind" | "hashes" | "addresses" | "packedBytes"> & {
  /** Page addresses (page-aligned user addresses). */
  addresses: ArrayLike<number>;
  /** The pages' real hashes; computed when absent. */
  hashes?: Uint8Array;
  /** The LZ4 block of `data` (smaller than it): sent instead of the data, flagged FLAG_LZ4. */
  packed?: Uint8Array;
};

/**
 * Encode a page batch. `hashes` are computed when absent; when given they must be the pages' real
 * hashes (the receiver checks). With `packed` (the LZ4 block of `data`, smaller than it) the frame
 * carries that block instead of the data, flagged {@linkcode FLAG_LZ4}; the receiver must have
 * announced the "lz4" codec.
 */
export function encodePages(f: PagesInput): Uint8Array {
  return concatParts(encodePagesParts(f));
}

/** {@linkcode encodePages} as parts: [head, data or LZ4 block] (the second is `f`'s own bytes). */
export function encodePagesParts(f: PagesInput): Uint8Array[] {
  const count = f.addresses.length;
  PagesHeader.parse({ kind: FrameKind.Pages, stream: f.stream, seq: f.seq, pid: f.pid, count });
  if (f.data.length !== count * PAGE_SIZE) {
    throw new RangeError(`page batch has ${f.data.length} bytes of data for ${count} pages`);
  }
  const hashes = f.hashes ?? pageHashes(f.data);
  if (hashes.length !== count * HASH_BYTES) {
    throw new RangeError(`page batch has ${hashes.length} bytes of hashes for ${count} pages`);
  }
  const packed = f.packed;
  if (packed && (packed.length < 1 || packed.length + 8 > f.data.length)) {
    throw new RangeError(`an LZ4 block of ${packed.length} bytes is no smaller than its data`);
  }
  const hashesAt = 40 + count * 8;
  const dataAt = hashesAt + count * HASH_BYTES;
  const head = new Uint8Array(dataAt + (packed ? 8 : 0));
  const view = new DataView(head.buffer);
  writeCommon(view, FrameKind.Pages, packed ? FLAG_LZ4 : 0, f.stream, f.seq);
  view.setUint32(16, f.pid, true);
  view.setUint32(20, count, true);
  writeAddresses(view, 40, f.addresses);
  head.set(hashes, hashesAt);
  if (packed) {
    view.setUint32(dataAt, f.data.length, true);
    view.setUint32(dataAt + 4, packed.length, true);
  }
  head.set(integrityHash([head.subarray(0, 24), head.subarray(40)]), 24);
  return [head, packed ?? f.data];
}

/** Encode one chunk of an image file. */
export function encodeFile(f: Omit<FileFrame, "kind">): Uint8Array {
  return concatParts(encodeFileParts(f));
}

/** {@linkcode encodeFile} as parts: [head with the name, the chunk's bytes]. */
export function encodeFileParts(f: Omit<FileFrame, "kind">): Uint8Array[] {
  FileHeader.parse({ ...f, kind: FrameKind.File, dataLength: f.data.length });
  const name = new TextEncoder().encode(f.name);
  const head = new Uint8Array(56 + name.length);
  const view = new DataView(head.buffer);
  writeCommon(view, FrameKind.File, 0, f.stream, f.seq);
  writeU64(view, 16, f.offset);
  writeU64(view, 24, f.total);
  view.setUint16(32, name.length, true);
  view.setUint32(36, f.data.length, true);
  head.set(name, 56);
  head.set(integrityHash([head.subarray(0, 40), head.subarray(56), f.data]), 40);
  return [head, f.data];
}

/** Encode a (part of a) page-hash listing. */
export function encodeHashes(f: Omit<HashesFrame, "kind">): Uint8Array {
  const count = f.addresses.length;
  HashesHeader.parse({ ...f, kind: FrameKind.Hashes, count });
  if (f.hashes.length !== count * HASH_BYTES) throw new RangeError("hash listing size mismatch");
  const out = new Uint8Array(40 + count * (8 + HASH_BYTES));
  const view = new DataView(out.buffer);
  writeCommon(view, FrameKind.Hashes, f.last ? FLAG_LAST : 0, f.stream, f.seq);
  view.setUint32(16, f.pid, true);
  view.setUint32(20, count, true);
  writeAddresses(view, 40, f.addresses);
  out.set(f.hashes, 40 + count * 8);
  out.set(integrityHash([out.subarray(0, 24), out.subarray(40)]), 24);
  return out;
}

/** Encode a tunnel chunk (its integrity hash covers header and data). */
export function encodeTunnel(f: Omit<TunnelFrame, "kind">): Uint8Array {
  TunnelHeader.parse({ ...f, kind: FrameKind.Tunnel, dataLength: f.data.length });
  const out = new Uint8Array(40 + f.data.length);
  const view = new DataView(out.buffer);
  writeCommon(view, FrameKind.Tunnel, f.fin ? FLAG_FIN : 0, f.stream, f.seq);
  view.setUint32(16, f.conn, true);
  view.setUint32(20, f.data.length, true);
  out.set(f.data, 40);
  out.set(integrityHash([out.subarray(0, 24), out.subarray(40)]), 24);
  return out;
}

/** The concatenation of `parts`. */
export function concatParts(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
