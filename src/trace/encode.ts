/**
 * Writing u2cm trace files (format version 1).
 *
 * ## Layout
 * ```
 * file    := "U2CT" u16le(version) u16le(0) u32le(headerLen) header record*
 * header  := UTF-8 JSON of TraceHeader
 * record  := u8(type) varint(len) payload[len] u32le(crc32(payload))
 * type 1  MAPS_ADD    varint(n) { varint id, pid, start/pageSize, pages, offset; perms[4]; u8 kind; string path }*n
 * type 2  MAPS_REMOVE varint(n) varint(id)*n
 * type 3  ROUND       varint round, elapsed_us, scan_us, resident, npids, pid*npids;
 *                     f64le feature*len(header.featureNames); pageset dirty; u8 hasAccess [pageset accessed]
 * type 4  END         varint rounds; string reason
 * ```
 * A ROUND applies the MAPS_ADD/MAPS_REMOVE records written just before it. Page sets are encoded by
 * {@linkcode encodePageSet}. A whole file may be gzip-compressed; readers detect that.
 *
 * @module
 */
import type { Mapping } from "../tracker/types.ts";
import { crc32 } from "../util/crc32.ts";
import { ByteSink } from "../util/varint.ts";
import { encodePageSet } from "./pageset_codec.ts";
import type { TraceEnd, TraceHeader, TraceRound } from "./types.ts";

/** The four magic bytes at the start of every trace file. */
export const TRACE_MAGIC = new Uint8Array([0x55, 0x32, 0x43, 0x54]); // "U2CT"

/** Record type codes. */
export const RecordType = { MapsAdd: 1, MapsRemove: 2, Round: 3, End: 4 } as const;

/** Mapping kinds in their on-disk order. */
export const MAPPING_KINDS = [
  "anon",
  "heap",
  "stack",
  "file-private",
  "shared-anon",
  "memfd",
] as const;

/** Encode the file preamble and header. */
export function encodeHeader(header: TraceHeader): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const sink = new ByteSink(json.length + 12);
  sink.bytes(TRACE_MAGIC);
  sink.u8(header.version & 0xff);
  sink.u8(header.version >> 8);
  sink.u8(0);
  sink.u8(0);
  sink.u32(json.length);
  sink.bytes(json);
  return sink.toBytes();
}

/** Encode one round, preceded by its mapping changes. */
export function encodeRound(header: TraceHeader, round: TraceRound): Uint8Array {
  const out = new ByteSink(1024);
  if (round.added.length > 0) {
    const p = new ByteSink();
    p.varint(round.added.length);
    for (const m of round.added) encodeMapping(p, m, header.pageSize);
    frame(out, RecordType.MapsAdd, p);
  }
  if (round.removed.length > 0) {
    const p = new ByteSink();
    p.varint(round.removed.length);
    for (const id of round.removed) p.varint(id);
    frame(out, RecordType.MapsRemove, p);
  }
  if (round.features.length !== header.featureNames.length) {
    throw new RangeError(
      `round ${round.round} has ${round.features.length} features, header names ${header.featureNames.length}`,
    );
  }
  const p = new ByteSink(256);
  p.varint(round.round);
  p.varint(Math.max(0, Math.round(round.elapsedMs * 1000)));
  p.varint(Math.max(0, Math.round(round.scanMs * 1000)));
  p.varint(round.residentPages);
  p.varint(round.pids.length);
  for (const pid of round.pids) p.varint(pid);
  for (const f of round.features) p.f64(f);
  encodePageSet(p, round.dirty);
  if (round.accessed) {
    p.u8(1);
    encodePageSet(p, round.accessed);
  } else {
    p.u8(0);
  }
  frame(out, RecordType.Round, p);
  return out.toBytes();
}

/** Encode the end record. */
export function encodeEnd(end: TraceEnd): Uint8Array {
  const p = new ByteSink();
  p.varint(end.rounds);
  p.string(end.reason);
  const out = new ByteSink();
  frame(out, RecordType.End, p);
  return out.toBytes();
}

/** Encode a whole trace in memory (header, rounds, end). */
export function encodeTrace(
  header: TraceHeader,
  rounds: Iterable<TraceRound>,
  end?: TraceEnd,
): Uint8Array {
  const parts: Uint8Array[] = [encodeHeader(header)];
  for (const r of rounds) parts.push(encodeRound(header, r));
  if (end) parts.push(encodeEnd(end));
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function encodeMapping(p: ByteSink, m: Mapping, pageSize: number): void {
  p.varint(m.id);
  p.varint(m.pid);
  p.varint(Math.floor(m.start / pageSize));
  p.varint(Math.ceil((m.end - m.start) / pageSize));
  p.varint(m.offset);
  const perms = new TextEncoder().encode(m.perms.padEnd(4, "-").slice(0, 4));
  p.bytes(perms);
  p.u8(MAPPING_KINDS.indexOf(m.kind));
  p.string(m.path);
}

function frame(out: ByteSink, type: number, payload: ByteSink): void {
  const bytes = payload.toBytes();
  out.u8(type);
  out.varint(bytes.length);
  out.bytes(bytes);
  out.u32(crc32(bytes));
}
