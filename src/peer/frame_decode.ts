/**
 * Checking and decoding binary frames (layout in frame_format.ts). {@linkcode decodeFrame} validates
 * sizes, bounds and hashes and throws only {@linkcode ProtocolError}.
 *
 * @example
 * ```ts
 * const frame = decodeFrame(bytes); // throws ProtocolError on anything malformed
 * ```
 *
 * @module
 */
import { ProtocolError } from "./errors.ts";
import { lz4Decompress } from "../native/codec.ts";
import {
  checkIntegrity,
  type FileFrame,
  FileHeader,
  FLAG_FIN,
  FLAG_LAST,
  FLAG_LZ4,
  type Frame,
  FRAME_MAGIC,
  FRAME_VERSION,
  FrameKind,
  type HashesFrame,
  HashesHeader,
  MAX_FRAME_BYTES,
  type PagesFrame,
  PagesHeader,
  readAddresses,
  readU64,
  type TunnelFrame,
  TunnelHeader,
  validate,
} from "./frame_format.ts";
import { bytesEqual, HASH_BYTES, PAGE_SIZE, pageHashes } from "../native/page_hash.ts";

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
  if (kind === FrameKind.Tunnel) return decodeTunnel(bytes, view, flags, stream, seq);
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

function decodeTunnel(
  bytes: Uint8Array,
  view: DataView,
  flags: number,
  stream: number,
  seq: number,
): TunnelFrame {
  if ((flags & ~FLAG_FIN) !== 0) throw new ProtocolError("tunnel frame has unknown flags");
  const header = validate(TunnelHeader, {
    kind: FrameKind.Tunnel,
    stream,
    seq,
    conn: view.getUint32(16, true),
    dataLength: view.getUint32(20, true),
    fin: (flags & FLAG_FIN) !== 0,
  });
  if (bytes.length !== 40 + header.dataLength) {
    throw new ProtocolError("tunnel frame length does not fit its data length");
  }
  checkIntegrity(bytes.subarray(24, 40), [bytes.subarray(0, 24), bytes.subarray(40)]);
  return {
    kind: FrameKind.Tunnel,
    stream,
    seq,
    conn: header.conn,
    data: bytes.subarray(40),
    fin: header.fin,
  };
}
