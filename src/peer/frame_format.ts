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
 * tunnel  16 conn u32 · 20 dataLen u32 · 24 hash[16] · 40 data      (seq: chunk number of this
 *         connection in this direction, from 1; FLAG_FIN: the sender's end of it closed after data)
 * ```
 *
 * The tunnel frame's integrity hash covers its header and its data (tunnel.ts).
 *
 * {@linkcode decodeFrame} validates sizes, bounds and hashes and throws only
 * {@linkcode ProtocolError}. A compressed page batch (FLAG_LZ4, sent only to agents that announce
 * the "lz4" codec) declares its decompressed size, which must equal `count × 4096` (≤ 1 MiB); the
 * data is decompressed into exactly that many bytes and the page hashes are recomputed over the
 * uncompressed pages, as for a raw batch. A malformed block or a size mismatch is a protocol error.
 *
 * This module holds the layout's constants, types, header schemas and shared helpers;
 * frame_encode.ts and frame_decode.ts build and check frames; frames.ts re-exports all three.
 *
 * @module
 */
import { z } from "zod";
import { ProtocolError } from "./errors.ts";
import { bytesEqual, HASH_BYTES, integrityHash, PAGE_SIZE } from "../native/page_hash.ts";

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
export const FrameKind = { Pages: 1, File: 2, Hashes: 3, Tunnel: 4 } as const;

/** Most bytes of data in one tunnel frame. */
export const MAX_TUNNEL_CHUNK = 256 * 1024;

/** Flag on the tunnel frame after which its sender sends no more on that connection. */
export const FLAG_FIN = 1;

/** Flag on the last hashes frame of a listing. */
export const FLAG_LAST = 1;

/** Flag on a page batch whose data is one LZ4 block (see the module doc). */
export const FLAG_LZ4 = 2;

/** Whether `name` is an acceptable image file name (no '/', no '..', allow-listed characters). */
export function isValidFileName(name: string): boolean {
  return FILE_NAME_RE.test(name) && !name.includes("..");
}

/** @internal */
export const u32 = z.number().int().min(0).max(0xffff_ffff);
/** @internal */
export const Stream = z.number().int().min(1).max(0x7fff_ffff);

/** @internal header schema of a page batch */
export const PagesHeader = z.object({
  kind: z.literal(FrameKind.Pages),
  stream: Stream,
  seq: z.number().int().min(1).max(0xffff_ffff),
  pid: z.number().int().min(1).max(0x7fff_ffff),
  count: z.number().int().min(1).max(MAX_BATCH_PAGES),
});
/** @internal header schema of a file chunk */
export const FileHeader = z.object({
  kind: z.literal(FrameKind.File),
  stream: Stream,
  seq: z.number().int().min(1).max(0xffff_ffff),
  name: z.string().refine(isValidFileName, "file name"),
  offset: z.number().int().min(0).max(MAX_FILE_BYTES),
  total: z.number().int().min(0).max(MAX_FILE_BYTES),
  dataLength: z.number().int().min(0).max(MAX_FILE_CHUNK),
}).refine((h) => h.offset + h.dataLength <= h.total, "chunk beyond the file's size");
/** @internal header schema of a hash listing */
export const HashesHeader = z.object({
  kind: z.literal(FrameKind.Hashes),
  stream: Stream,
  seq: u32,
  pid: z.number().int().min(1).max(0x7fff_ffff),
  count: z.number().int().min(0).max(MAX_HASH_ENTRIES),
  last: z.boolean(),
});

/** @internal header schema of a tunnel chunk */
export const TunnelHeader = z.object({
  kind: z.literal(FrameKind.Tunnel),
  stream: Stream,
  seq: z.number().int().min(1).max(0xffff_ffff),
  conn: z.number().int().min(1).max(0x7fff_ffff),
  dataLength: z.number().int().min(0).max(MAX_TUNNEL_CHUNK),
  fin: z.boolean(),
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

/** Bytes of one connection carried through a tunnel (tunnel.ts). */
export interface TunnelFrame {
  /** Frame kind. */
  kind: typeof FrameKind.Tunnel;
  /** The migration's stream number. */
  stream: number;
  /** Chunk number of this connection in this direction, from 1. */
  seq: number;
  /** The tunnelled connection's id within the migration. */
  conn: number;
  /** The bytes. */
  data: Uint8Array;
  /** Whether the sender's end of the connection closed after these bytes. */
  fin: boolean;
}

/** Any binary frame. */
export type Frame = PagesFrame | FileFrame | HashesFrame | TunnelFrame;

export function writeCommon(
  view: DataView,
  kind: number,
  flags: number,
  stream: number,
  seq: number,
) {
  view.setUint32(0, FRAME_MAGIC, true);
  view.setUint8(4, FRAME_VERSION);
  view.setUint8(5, kind);
  view.setUint16(6, flags, true);
  view.setUint32(8, stream, true);
  view.setUint32(12, seq, true);
}

/** @internal */
export function writeU64(view: DataView, at: number, value: number): void {
  view.setUint32(at, value % 0x1_0000_0000, true);
  view.setUint32(at + 4, Math.floor(value / 0x1_0000_0000), true);
}

/** @internal */
export function readU64(view: DataView, at: number): number {
  return view.getUint32(at + 4, true) * 0x1_0000_0000 + view.getUint32(at, true);
}

/** @internal */
export function writeAddresses(view: DataView, at: number, addresses: ArrayLike<number>): void {
  for (let i = 0; i < addresses.length; i++) {
    const a = addresses[i];
    if (!Number.isInteger(a) || a < 0 || a > MAX_ADDRESS || a % PAGE_SIZE !== 0) {
      throw new RangeError(`page address ${a} is not a page-aligned user address`);
    }
    view.setUint32(at + i * 8, a % 0x1_0000_0000, true);
    view.setUint32(at + i * 8 + 4, Math.floor(a / 0x1_0000_0000), true);
  }
}

/** @internal */
export function readAddresses(view: DataView, at: number, n: number): Float64Array {
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

/** @internal */
export function checkIntegrity(expected: Uint8Array, parts: Uint8Array[]): void {
  if (!bytesEqual(integrityHash(parts), expected)) {
    throw new ProtocolError("frame integrity hash mismatch (corrupted frame)");
  }
}

/** @internal */
export function validate<T>(schema: z.ZodType<T>, value: unknown): T {
  const r = schema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new ProtocolError(`invalid frame header at ${issue?.path.join(".")}: ${issue?.message}`);
  }
  return r.data;
}
