/**
 * Binary frames of the peer protocol: page batches, image-file chunks and page-hash listings. All
 * integers are little-endian; each frame carries a 16-byte integrity hash (page_hash.ts) over its
 * header and metadata, and page data is covered by the per-page hashes the receiver recomputes.
 *
 * ```
 * common   0 magic "U2PG" · 4 version u8 · 5 kind u8 · 6 flags u16 · 8 stream u32 · 12 seq u32
 * pages   16 pid u32 · 20 count u32 · 24 hash[16] · 40 addr u64[count] · hash[16][count] · data
 *         with FLAG_LZ4, `data` is replaced by: rawLen u32 · packedLen u32 · packed (an LZ4 block
 *         that must decode to exactly rawLen = count × 4096 bytes)
 * file    16 offset u64 · 24 total u64 · 32 nameLen u16 · 34 0 u16 · 36 dataLen u32 · 40 hash[16]
 *         56 name · data
 * hashes  16 pid u32 · 20 count u32 · 24 hash[16] · 40 addr u64[count] · hash[16][count]
 * ```
 *
 * {@linkcode decodeFrame} validates sizes, bounds and hashes and throws only
 * {@linkcode ProtocolError}. A compressed page batch (FLAG_LZ4, sent only to agents that announce
 * the "lz4" codec) declares its decompressed size, which must equal `count × 4096` (≤ 1 MiB); the
 * data is decompressed into exactly that many bytes and the page hashes are recomputed over the
 * uncompressed pages, as for a raw batch. A malformed block or a size mismatch is a protocol error.
 *
 * @module
 */
import { z } from "zod";
import { ProtocolError } from "./errors.ts";
import { lz4Decompress } from "../native/codec.ts";
import {
  bytesEqual,
  HASH_BYTES,
  integrityHash,
  PAGE_SIZE,
  pageHashes,
} from "../native/page_hash.ts";

/** Frame magic, "U2PG" read as a little-endian u32. */
export const FRAME_MAGIC = 0x47503255;
/** Binary frame format version. */
export const FRAME_VERSION = 1;
/** Most pages in one batch frame (1 MiB of data). */
export const MAX_BATCH_PAGES = 256;
/** Most bytes of file data in one file frame. */
export const MAX_FILE_CHUNK = 1024 * 1024;
/** Largest image file (16 GiB). */
export const MAX_FILE_BYTES = 16 * 2 ** 30;
/** Most entries in one hashes frame. */
export const MAX_HASH_ENTRIES = 32768;
/** Largest binary frame of any kind. */
export const MAX_FRAME_BYTES = 40 + MAX_BATCH_PAGES * (8 + HASH_BYTES + PAGE_SIZE);
/** Highest page address (user space fits far below 2^53, which keeps addresses exact numbers). */
export const MAX_ADDRESS = 2 ** 53 - PAGE_SIZE;

/** Image file names: letters, digits, '.', '_', '-', starting with a letter or digit, ≤ 128. */
export const FILE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Frame kinds. */
export const FrameKind = { Pages: 1, File: 2, Hashes: 3 } as const;

/** Flag on the last hashes frame of a listing. */
export const FLAG_LAST = 1;

/** Flag on a page batch whose data is one LZ4 block (see the module doc). */
export const FLAG_LZ4 = 2;

/** Whether `name` is an acceptable image file name (no '/', no '..', allow-listed characters). */
export function isValidFileName(name: string): boolean {
  return FILE_NAME_RE.test(name) && !name.includes("..");
}

const u32 = z.number().int().min(0).max(0xffff_ffff);
const Stream = z.number().int().min(1).max(0x7fff_ffff);

const PagesHeader = z.object({
  kind: z.literal(FrameKind.Pages),
  stream: Stream,
  seq: z.number().int().min(1).max(0xffff_ffff),
  pid: z.number().int().min(1).max(0x7fff_ffff),
  count: z.number().int().min(1).max(MAX_BATCH_PAGES),
});
const FileHeader = z.object({
  kind: z.literal(FrameKind.File),
  stream: Stream,
  seq: z.number().int().min(1).max(0xffff_ffff),
  name: z.string().refine(isValidFileName, "file name"),
  offset: z.number().int().min(0).max(MAX_FILE_BYTES),
  total: z.number().int().min(0).max(MAX_FILE_BYTES),
  dataLength: z.number().int().min(0).max(MAX_FILE_CHUNK),
}).refine((h) => h.offset + h.dataLength <= h.total, "chunk beyond the file's size");
const HashesHeader = z.object({
  kind: z.literal(FrameKind.Hashes),
  stream: Stream,
  seq: u32,
  pid: z.number().int().min(1).max(0x7fff_ffff),
  count: z.number().int().min(0).max(MAX_HASH_ENTRIES),
  last: z.boolean(),
});

/** A batch of pages of one process. */
export interface PagesFrame {
  /** Frame kind. */
  kind: typeof FrameKind.Pages;
  /** The migration's stream number on this connection. */
  stream: number;
  /** Chunk sequence number within the migration, from 1. */
  seq: number;
  /** Process id on the source. */
  pid: number;
  /** Page addresses. */
  addresses: Float64Array;
  /** 16 bytes per page. */
  hashes: Uint8Array;
  /** 4096 bytes per page (decompressed when the frame carried them compressed). */
  data: Uint8Array;
  /** Bytes of the LZ4 block the data arrived as, when the frame was compressed. */
  packedBytes?: number;
}

/** A chunk of an image file. */
export interface FileFrame {
  /** Frame kind. */
  kind: typeof FrameKind.File;
  /** The migration's stream number. */
  stream: number;
  /** Chunk sequence number within the migration (shared with page batches). */
  seq: number;
  /** File name inside the migration directory. */
  name: string;
  /** Byte offset of this chunk. */
  offset: number;
  /** Final size of the file. */
  total: number;
  /** The chunk's bytes. */
  data: Uint8Array;
}

/** A listing of page hashes the destination holds for one process (one part of it). */
export interface HashesFrame {
  /** Frame kind. */
  kind: typeof FrameKind.Hashes;
  /** The migration's stream number. */
  stream: number;
  /** The request id this answers. */
  seq: number;
  /** Process id. */
  pid: number;
  /** Page addresses. */
  addresses: Float64Array;
  /** 16 bytes per page. */
  hashes: Uint8Array;
  /** Whether this is the listing's last frame. */
  last: boolean;
}

/** Any binary frame. */
export type Frame = PagesFrame | FileFrame | HashesFrame;

/**
 * Encode a page batch. `hashes` are computed when absent; when given they must be the pages' real
 * hashes (the receiver checks). With `packed` (the LZ4 block of `data`, smaller than it) the frame
 * carries that block instead of the data, flagged {@linkcode FLAG_LZ4}; the receiver must have
 * announced the "lz4" codec.
 */
export function encodePages(
  f: Omit<PagesFrame, "kind" | "hashes" | "addresses" | "packedBytes"> & {
    addresses: ArrayLike<number>;
    hashes?: Uint8Array;
    packed?: Uint8Array;
  },
): Uint8Array {
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
  const out = new Uint8Array(dataAt + (packed ? 8 + packed.length : f.data.length));
  const view = new DataView(out.buffer);
  writeCommon(view, FrameKind.Pages, packed ? FLAG_LZ4 : 0, f.stream, f.seq);
  view.setUint32(16, f.pid, true);
  view.setUint32(20, count, true);
  writeAddresses(view, 40, f.addresses);
  out.set(hashes, hashesAt);
  let covered = dataAt;
  if (packed) {
    view.setUint32(dataAt, f.data.length, true);
    view.setUint32(dataAt + 4, packed.length, true);
    out.set(packed, dataAt + 8);
    covered = dataAt + 8;
  } else {
    out.set(f.data, dataAt);
  }
  out.set(integrityHash([out.subarray(0, 24), out.subarray(40, covered)]), 24);
  return out;
}

/** Encode one chunk of an image file. */
export function encodeFile(f: Omit<FileFrame, "kind">): Uint8Array {
  FileHeader.parse({ ...f, kind: FrameKind.File, dataLength: f.data.length });
  const name = new TextEncoder().encode(f.name);
  const out = new Uint8Array(56 + name.length + f.data.length);
  const view = new DataView(out.buffer);
  writeCommon(view, FrameKind.File, 0, f.stream, f.seq);
  writeU64(view, 16, f.offset);
  writeU64(view, 24, f.total);
  view.setUint16(32, name.length, true);
  view.setUint32(36, f.data.length, true);
  out.set(name, 56);
  out.set(f.data, 56 + name.length);
  out.set(integrityHash([out.subarray(0, 40), out.subarray(56)]), 40);
  return out;
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

/**
 * Decode and verify one binary frame. Throws {@linkcode ProtocolError} (only) when it is malformed,
 * oversized, out of bounds, or fails its integrity hash or a page hash.
 *
 * @param bytes the frame
 * @param verifyPages recompute page hashes over the data @default true
 */
export function decodeFrame(bytes: Uint8Array, verifyPages = true): Frame {
  if (!(bytes instanceof Uint8Array)) throw new ProtocolError("binary frame is not bytes");
  if (bytes.length > MAX_FRAME_BYTES) {
    throw new ProtocolError(`binary frame of ${bytes.length} bytes exceeds ${MAX_FRAME_BYTES}`);
  }
  if (bytes.length < 40) throw new ProtocolError(`binary frame of ${bytes.length} bytes is short`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== FRAME_MAGIC) throw new ProtocolError("bad frame magic");
  if (bytes[4] !== FRAME_VERSION) {
    throw new ProtocolError(`frame version ${bytes[4]} is not supported`);
  }
  const kind = bytes[5];
  const flags = view.getUint16(6, true);
  const stream = view.getUint32(8, true);
  const seq = view.getUint32(12, true);
  if (kind === FrameKind.Pages) return decodePages(bytes, view, flags, stream, seq, verifyPages);
  if (kind === FrameKind.File) return decodeFileFrame(bytes, view, flags, stream, seq);
  if (kind === FrameKind.Hashes) return decodeHashes(bytes, view, flags, stream, seq);
  throw new ProtocolError(`unknown frame kind ${kind}`);
}

function decodePages(
  bytes: Uint8Array,
  view: DataView,
  flags: number,
  stream: number,
  seq: number,
  verifyPages: boolean,
): PagesFrame {
  const header = validate(PagesHeader, {
    kind: FrameKind.Pages,
    stream,
    seq,
    pid: view.getUint32(16, true),
    count: view.getUint32(20, true),
  });
  if (flags !== 0 && flags !== FLAG_LZ4) throw new ProtocolError("page frame has unknown flags");
  const n = header.count;
  const hashesAt = 40 + n * 8;
  const dataAt = hashesAt + n * HASH_BYTES;
  const compressed = flags === FLAG_LZ4;
  let covered = dataAt;
  if (compressed) {
    if (bytes.length < dataAt + 9) {
      throw new ProtocolError(`compressed page frame length ${bytes.length} is short`);
    }
    const rawLength = view.getUint32(dataAt, true);
    const packedLength = view.getUint32(dataAt + 4, true);
    if (rawLength !== n * PAGE_SIZE) {
      throw new ProtocolError(
        `compressed page frame declares ${rawLength} bytes for ${n} pages (need ${n * PAGE_SIZE})`,
      );
    }
    if (packedLength < 1 || packedLength + 8 > rawLength) {
      throw new ProtocolError(`compressed block of ${packedLength} bytes is out of bounds`);
    }
    if (bytes.length !== dataAt + 8 + packedLength) {
      throw new ProtocolError(`compressed page frame length ${bytes.length} does not add up`);
    }
    covered = dataAt + 8;
  } else if (bytes.length !== dataAt + n * PAGE_SIZE) {
    throw new ProtocolError(`page frame length ${bytes.length} does not fit ${n} pages`);
  }
  checkIntegrity(bytes.subarray(24, 40), [bytes.subarray(0, 24), bytes.subarray(40, covered)]);
  const addresses = readAddresses(view, 40, n);
  const hashes = bytes.subarray(hashesAt, dataAt);
  const data = compressed
    ? decompress(bytes.subarray(covered), n * PAGE_SIZE)
    : bytes.subarray(dataAt);
  if (verifyPages && !bytesEqual(pageHashes(data), hashes)) {
    throw new ProtocolError("page data does not match its hashes (corrupted batch)");
  }
  const frame: PagesFrame = {
    kind: FrameKind.Pages,
    stream,
    seq,
    pid: header.pid,
    addresses,
    hashes,
    data,
  };
  if (compressed) frame.packedBytes = bytes.length - covered;
  return frame;
}

/** Decompress a page batch's LZ4 block into exactly `size` bytes, or throw a ProtocolError. */
function decompress(packed: Uint8Array, size: number): Uint8Array {
  try {
    return lz4Decompress(packed, size);
  } catch (e) {
    throw new ProtocolError(`compressed page data is invalid: ${(e as Error).message}`);
  }
}

function decodeFileFrame(
  bytes: Uint8Array,
  view: DataView,
  flags: number,
  stream: number,
  seq: number,
): FileFrame {
  if (bytes.length < 56) throw new ProtocolError("file frame is short");
  if (flags !== 0 || view.getUint16(34, true) !== 0) {
    throw new ProtocolError("file frame has unknown flags");
  }
  const nameLength = view.getUint16(32, true);
  const dataLength = view.getUint32(36, true);
  if (nameLength < 1 || nameLength > 128 || bytes.length !== 56 + nameLength + dataLength) {
    throw new ProtocolError("file frame lengths do not add up");
  }
  checkIntegrity(bytes.subarray(40, 56), [bytes.subarray(0, 40), bytes.subarray(56)]);
  let name: string;
  try {
    name = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(56, 56 + nameLength));
  } catch {
    throw new ProtocolError("file name is not UTF-8");
  }
  const header = validate(FileHeader, {
    kind: FrameKind.File,
    stream,
    seq,
    name,
    offset: readU64(view, 16),
    total: readU64(view, 24),
    dataLength,
  });
  return {
    kind: FrameKind.File,
    stream,
    seq,
    name: header.name,
    offset: header.offset,
    total: header.total,
    data: bytes.subarray(56 + nameLength),
  };
}

function decodeHashes(
  bytes: Uint8Array,
  view: DataView,
  flags: number,
  stream: number,
  seq: number,
): HashesFrame {
  if ((flags & ~FLAG_LAST) !== 0) throw new ProtocolError("hashes frame has unknown flags");
  const header = validate(HashesHeader, {
    kind: FrameKind.Hashes,
    stream,
    seq,
    pid: view.getUint32(16, true),
    count: view.getUint32(20, true),
    last: (flags & FLAG_LAST) !== 0,
  });
  const n = header.count;
  if (bytes.length !== 40 + n * (8 + HASH_BYTES)) {
    throw new ProtocolError("hashes frame length does not fit its count");
  }
  checkIntegrity(bytes.subarray(24, 40), [bytes.subarray(0, 24), bytes.subarray(40)]);
  return {
    kind: FrameKind.Hashes,
    stream,
    seq,
    pid: header.pid,
    addresses: readAddresses(view, 40, n),
    hashes: bytes.subarray(40 + n * 8),
    last: header.last,
  };
}

function writeCommon(view: DataView, kind: number, flags: number, stream: number, seq: number) {
  view.setUint32(0, FRAME_MAGIC, true);
  view.setUint8(4, FRAME_VERSION);
  view.setUint8(5, kind);
  view.setUint16(6, flags, true);
  view.setUint32(8, stream, true);
  view.setUint32(12, seq, true);
}

function writeU64(view: DataView, at: number, value: number): void {
  view.setUint32(at, value % 0x1_0000_0000, true);
  view.setUint32(at + 4, Math.floor(value / 0x1_0000_0000), true);
}

function readU64(view: DataView, at: number): number {
  return view.getUint32(at + 4, true) * 0x1_0000_0000 + view.getUint32(at, true);
}

function writeAddresses(view: DataView, at: number, addresses: ArrayLike<number>): void {
  for (let i = 0; i < addresses.length; i++) {
    const a = addresses[i];
    if (!Number.isInteger(a) || a < 0 || a > MAX_ADDRESS || a % PAGE_SIZE !== 0) {
      throw new RangeError(`page address ${a} is not a page-aligned user address`);
    }
    view.setUint32(at + i * 8, a % 0x1_0000_0000, true);
    view.setUint32(at + i * 8 + 4, Math.floor(a / 0x1_0000_0000), true);
  }
}

function readAddresses(view: DataView, at: number, n: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const lo = view.getUint32(at + i * 8, true);
    const hi = view.getUint32(at + i * 8 + 4, true);
    const a = hi * 0x1_0000_0000 + lo;
    if (hi >= 0x20_0000 || a > MAX_ADDRESS || lo % PAGE_SIZE !== 0) {
      throw new ProtocolError(`page address 0x${a.toString(16)} is out of bounds or unaligned`);
    }
    out[i] = a;
  }
  return out;
}

function checkIntegrity(expected: Uint8Array, parts: Uint8Array[]): void {
  if (!bytesEqual(integrityHash(parts), expected)) {
    throw new ProtocolError("frame integrity hash mismatch (corrupted frame)");
  }
}

function validate<T>(schema: z.ZodType<T>, value: unknown): T {
  const r = schema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new ProtocolError(`invalid frame header at ${issue?.path.join(".")}: ${issue?.message}`);
  }
  return r.data;
}
