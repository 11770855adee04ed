/**
 * Crafted traces for simulator and policy tests: one anonymous mapping, a chosen set of dirty pages
 * per round, encoded with the real trace writer and decoded with the real reader.
 *
 * @module
 */
import { decodeTrace, encodeTrace, type Trace, type TraceRound } from "../../src/trace/mod.ts";
import { FEATURE_NAMES } from "../../src/history/features.ts";
import type { Mapping } from "../../src/tracker/types.ts";

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
  const start = 0x7f00_0000_0000;
  const mapping: Mapping = {
    id: 1,
    pid: 42,
    start,
    end: start + pages * 4096,
    perms: "rw-p",
    offset: 0,
    path: "",
    kind: "anon",
  };
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
      added: r === 0 ? [mapping] : [],
      removed: [],
      dirty: new Map([[1, Uint32Array.from(dirty.sort((a, b) => a - b))]]),
      features: new Float64Array(FEATURE_NAMES.length),
    });
  }
  const header = {
    format: "u2cm-trace" as const,
    version: 1,
    pageSize: 4096,
    backend: "hash" as const,
    intervalMs,
    startedAt: "2026-11-25T00:00:00.000Z",
    host: { kernel: "6.18", arch: "x86_64", hostname: "t", cpus: 2, memTotalBytes: 1 << 30 },
    target: { pid: 42, comm: "w", cmdline: ["w"] },
    processes: [{ pid: 42, ppid: 1, comm: "w" }],
    featureNames: [...FEATURE_NAMES],
    accessBits: false,
    workload: { name: "crafted" },
  };
  return decodeTrace(encodeTrace(header, out, { rounds, reason: "rounds" }));
}

/** The integers [from, to). */
export function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
}
