/**
 * Reading u2cm trace files; see `encode.ts` for the layout. Every malformed input raises a
 * {@linkcode TraceFormatError} naming the source and the problem.
 *
 * @module
 */
import type { Mapping, MappingKind } from "../tracker/types.ts";
import { crc32 } from "../util/crc32.ts";
import { ByteSource, DecodeError } from "../util/varint.ts";
import { MAPPING_KINDS, RecordType, TRACE_MAGIC } from "./encode.ts";
import { decodePageSet } from "./pageset_codec.ts";
import {
  type Trace,
  TRACE_VERSION,
  type TraceEnd,
  TraceFormatError,
  type TraceHeader,
  type TraceRound,
} from "./types.ts";

/** Bound on a record payload (guards corrupt length fields). */
const MAX_RECORD_BYTES = 1 << 28;
/** Bound on the JSON header. */
const MAX_HEADER_BYTES = 1 << 22;

/** Options for {@linkcode decodeTrace}. */
export interface DecodeTraceOptions {
  /** Name used in error messages. @default "<memory>" */
  source?: string;
  /**
   * Accept a file cut short after its last complete record (a recorder killed mid-run).
   * @default true
   */
  allowTruncated?: boolean;
}

/**
 * Decode a trace from bytes (plain or gzip-compressed bytes must be decompressed first; see
 * {@linkcode readTraceFile}).
 */
export function decodeTrace(bytes: Uint8Array, options: DecodeTraceOptions = {}): Trace {
  const { source = "<memory>", allowTruncated = true } = options;
  const fail = (problem: string): never => {
    throw new TraceFormatError(source, problem);
  };
  if (bytes.length < 12) fail(`too short to be a trace (${bytes.length} bytes)`);
  for (let i = 0; i < 4; i++) {
    if (bytes[i] !== TRACE_MAGIC[i]) fail("not a u2cm trace (bad magic)");
  }
  const src = new ByteSource(bytes, 4);
  const version = src.u8() | (src.u8() << 8);
  if (version !== TRACE_VERSION) {
    fail(`unsupported trace version ${version} (this u2cm reads ${TRACE_VERSION})`);
  }
  src.pos += 2;
  const headerLen = src.u32();
  if (headerLen > MAX_HEADER_BYTES || headerLen > src.remaining) {
    fail(`header length ${headerLen} exceeds the file`);
  }
  let header: TraceHeader;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(src.bytes(headerLen)));
  } catch (e) {
    return fail(`header is not valid JSON: ${(e as Error).message}`);
  }
  validateHeader(header, fail);

  const mappings = new Map<number, Mapping>();
  const rounds: TraceRound[] = [];
  let added: Mapping[] = [];
  let removed: number[] = [];
  let end: TraceEnd | undefined;
  while (src.remaining > 0) {
    const recordStart = src.pos;
    let type: number, payload: Uint8Array, crc: number;
    try {
      type = src.u8();
      const len = src.varint();
      if (len > MAX_RECORD_BYTES) fail(`record at offset ${recordStart} claims ${len} bytes`);
      payload = src.bytes(len);
      crc = src.u32();
    } catch (e) {
      if (e instanceof DecodeError && allowTruncated) break;
      if (e instanceof DecodeError) fail(`truncated record at offset ${recordStart}`);
      throw e;
    }
    if (crc32(payload) !== crc) fail(`checksum mismatch in record at offset ${recordStart}`);
    const p = new ByteSource(payload);
    try {
      switch (type) {
        case RecordType.MapsAdd: {
          const n = p.varint();
          for (let i = 0; i < n; i++) {
            const m = decodeMapping(p, header.pageSize);
            mappings.set(m.id, m);
            added.push(m);
          }
          break;
        }
        case RecordType.MapsRemove: {
          const n = p.varint();
          for (let i = 0; i < n; i++) removed.push(p.varint());
          break;
        }
        case RecordType.Round: {
          rounds.push(decodeRound(p, header, added, removed));
          added = [];
          removed = [];
          break;
        }
        case RecordType.End:
          end = { rounds: p.varint(), reason: p.string() };
          break;
        default:
          fail(`unknown record type ${type} at offset ${recordStart}`);
      }
    } catch (e) {
      if (e instanceof DecodeError) fail(`corrupt record at offset ${recordStart}: ${e.message}`);
      throw e;
    }
    if (end) break;
  }
  return { header, rounds, mappings, end };
}

/**
 * Read and decode a trace file, gzip-compressed or not.
 *
 * @example
 * ```ts ignore
 * const trace = await readTraceFile("redis.u2ct");
 * console.log(trace.rounds.length);
 * ```
 */
export async function readTraceFile(path: string): Promise<Trace> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new TraceFormatError(path, `cannot read: ${(e as Error).message}`);
  }
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream()
        .pipeThrough(new DecompressionStream("gzip"));
      bytes = new Uint8Array(await new Response(stream).arrayBuffer());
    } catch (e) {
      throw new TraceFormatError(path, `corrupt gzip data: ${(e as Error).message}`);
    }
  }
  return decodeTrace(bytes, { source: path });
}

function decodeRound(
  p: ByteSource,
  header: TraceHeader,
  added: Mapping[],
  removed: number[],
): TraceRound {
  const round = p.varint();
  const elapsedMs = p.varint() / 1000;
  const scanMs = p.varint() / 1000;
  const residentPages = p.varint();
  const npids = p.varint();
  if (npids > p.remaining) throw new DecodeError(`round claims ${npids} pids`);
  const pids: number[] = [];
  for (let i = 0; i < npids; i++) pids.push(p.varint());
  const features = new Float64Array(header.featureNames.length);
  for (let i = 0; i < features.length; i++) features[i] = p.f64();
  const dirty = decodePageSet(p);
  const accessed = p.u8() === 1 ? decodePageSet(p) : undefined;
  return {
    round,
    elapsedMs,
    scanMs,
    residentPages,
    pids,
    added,
    removed,
    dirty,
    accessed,
    features,
  };
}

function decodeMapping(p: ByteSource, pageSize: number): Mapping {
  const id = p.varint();
  const pid = p.varint();
  const start = p.varint() * pageSize;
  const end = start + p.varint() * pageSize;
  const offset = p.varint();
  const perms = new TextDecoder().decode(p.bytes(4));
  const kindIndex = p.u8();
  const kind = MAPPING_KINDS[kindIndex] as MappingKind | undefined;
  if (!kind) throw new DecodeError(`unknown mapping kind ${kindIndex}`);
  const path = p.string(4096);
  return { id, pid, start, end, perms, offset, path, kind };
}

function validateHeader(h: TraceHeader, fail: (problem: string) => never): void {
  if (typeof h !== "object" || h === null || h.format !== "u2cm-trace") {
    fail("header is not a u2cm-trace header");
  }
  if (!Number.isInteger(h.pageSize) || h.pageSize < 1024 || (h.pageSize & (h.pageSize - 1))) {
    fail(`invalid page size ${h.pageSize}`);
  }
  if (h.backend !== "softdirty" && h.backend !== "hash" && h.backend !== "uffd-wp") {
    fail(`unknown backend ${h.backend}`);
  }
  if (!Array.isArray(h.featureNames) || h.featureNames.some((n) => typeof n !== "string")) {
    fail("header has no feature name list");
  }
  if (!(h.intervalMs > 0)) fail(`invalid interval ${h.intervalMs}`);
}
