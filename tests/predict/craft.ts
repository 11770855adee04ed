/**
 * Crafted traces for the predictor tests: a synthetic workload with known per-page patterns,
 * encoded with the real trace writer and decoded with the real reader.
 *
 * @module
 */
import {
  decodeTrace,
  encodeTrace,
  type Trace,
  type TraceHeader,
  type TraceRound,
} from "../../src/trace/mod.ts";
import { FEATURE_NAMES } from "../../src/history/features.ts";
import type { Mapping } from "../../src/tracker/types.ts";

/** A header like `u2cm trace` writes, with the current feature set. */
export function header(extra: Partial<TraceHeader> = {}): TraceHeader {
  return {
    format: "u2cm-trace",
    version: 1,
    pageSize: 4096,
    backend: "hash",
    intervalMs: 100,
    startedAt: "2026-11-25T00:00:00.000Z",
    host: { kernel: "6.18", arch: "x86_64", hostname: "t", cpus: 2, memTotalBytes: 1 << 30 },
    target: { pid: 42, comm: "w", cmdline: ["w"] },
    processes: [{ pid: 42, ppid: 1, comm: "w" }],
    featureNames: [...FEATURE_NAMES],
    accessBits: false,
    workload: { name: "crafted" },
    ...extra,
  };
}

/** A mapping of `pages` pages with id `id`. */
export function mapping(id: number, pages: number): Mapping {
  const start = 0x7f00_0000_0000 + id * 0x1000_0000;
  return {
    id,
    pid: 42,
    start,
    end: start + pages * 4096,
    perms: "rw-p",
    offset: 0,
    path: "",
    kind: "anon",
  };
}

/**
 * A trace of `rounds` rounds over one 64-page mapping: pages 0–7 dirty every round, pages 8–15
 * every other round, page 16 + (r mod 8) in round r, the rest never.
 *
 * @param rounds rounds to write (round 0 included)
 * @param extra header overrides
 */
export function patternTrace(rounds: number, extra: Partial<TraceHeader> = {}): Trace {
  const h = header(extra);
  const out: TraceRound[] = [];
  for (let r = 0; r < rounds; r++) {
    const pages: number[] = [0, 1, 2, 3, 4, 5, 6, 7];
    if (r % 2 === 0) pages.push(8, 9, 10, 11, 12, 13, 14, 15);
    pages.push(16 + (r % 8));
    out.push({
      round: r,
      elapsedMs: r * 100,
      scanMs: 1,
      residentPages: 64,
      pids: [42],
      added: r === 0 ? [mapping(1, 64)] : [],
      removed: [],
      dirty: new Map([[1, Uint32Array.from(pages.sort((a, b) => a - b))]]),
      features: new Float64Array(h.featureNames.length).fill(r),
    });
  }
  return decodeTrace(encodeTrace(h, out, { rounds, reason: "rounds" }));
}
