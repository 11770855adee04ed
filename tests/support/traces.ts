/**
 * Crafted traces for simulator and policy tests: one anonymous mapping, a chosen set of dirty pages
 * per round, encoded with the real trace writer and decoded with the real reader.
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
 * Build a trace of `rounds` rounds of `intervalMs` over one mapping of `pages` pages, where
 * round r (r ≥ 1) dirtied `dirtyAt(r)` (page indices). Round 0 is the baseline, as the tracker
 * reports it: every resident page.
 *
 * @param pages resident pages
 * @param rounds rounds including round 0
 * @param dirtyAt the pages written during round r
 * @param intervalMs round length @default 100
 */
export function craftTrace(
  pages: number,
  rounds: number,
  dirtyAt: (round: number) => Iterable<number>,
  intervalMs = 100,
): Trace {
  const anon = mapping(1, pages);
  const out: TraceRound[] = [];
  for (let r = 0; r < rounds; r++) {
    const dirty = r === 0
      ? range(0, pages)
      : [...new Set(dirtyAt(r))].filter((p) => p >= 0 && p < pages);
    out.push({
      round: r,
      elapsedMs: r * intervalMs,
      scanMs: 1,
      residentPages: pages,
      pids: [42],
      added: r === 0 ? [anon] : [],
      removed: [],
      dirty: new Map([[1, Uint32Array.from(dirty.sort((a, b) => a - b))]]),
      features: new Float64Array(FEATURE_NAMES.length),
    });
  }
  return decodeTrace(encodeTrace(header({ intervalMs }), out, { rounds, reason: "rounds" }));
}

/** The integers [from, to). */
export function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
}
