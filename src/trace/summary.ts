/**
 * A short statistical summary of a trace, as `u2cm trace info` prints it.
 *
 * @module
 */
import { pageSetSize } from "../tracker/types.ts";
import type { Trace } from "./types.ts";

/** Summary of one trace. */
export interface TraceSummary {
  /** Rounds recorded. */
  rounds: number;
  /** Milliseconds from the first to the last round. */
  duration_ms: number;
  /** Requested interval between rounds. */
  interval_ms: number;
  /** Tracker backend. */
  backend: string;
  /** Page size in bytes. */
  page_size: number;
  /** Root pid and command name. */
  target: string;
  /** Distinct processes seen. */
  processes: number;
  /** Distinct mappings seen. */
  mappings: number;
  /** Resident pages at the first and last round. */
  resident_pages_first: number;
  /** Resident pages at the last round. */
  resident_pages_last: number;
  /** Dirty pages per round after the baseline: mean, median, 95th percentile, maximum. */
  dirty_pages: { mean: number; p50: number; p95: number; max: number };
  /** Mean dirty pages per second of trace after the baseline. */
  dirty_pages_per_s: number;
  /** Distinct pages dirtied after the baseline. */
  distinct_dirty_pages: number;
  /** Mean scan time in milliseconds. */
  scan_ms_mean: number;
  /** Whether access bits were recorded. */
  access_bits: boolean;
  /** Feature names recorded. */
  features: string[];
  /** How the trace ended (`truncated` when the end record is missing). */
  end: string;
  /** Workload name when recorded. */
  workload?: string;
}

/** Summarize a decoded trace. */
export function summarizeTrace(trace: Trace): TraceSummary {
  const { header, rounds } = trace;
  const later = rounds.slice(1);
  const counts = later.map((r) => pageSetSize(r.dirty)).sort((a, b) => a - b);
  const distinct = new Set<string>();
  for (const r of later) {
    for (const [id, pages] of r.dirty) for (const p of pages) distinct.add(`${id}:${p}`);
  }
  const duration = rounds.length > 1
    ? rounds[rounds.length - 1].elapsedMs - rounds[0].elapsedMs
    : 0;
  const sum = counts.reduce((a, b) => a + b, 0);
  const pids = new Set<number>();
  for (const r of rounds) for (const p of r.pids) pids.add(p);
  return {
    rounds: rounds.length,
    duration_ms: round1(duration),
    interval_ms: header.intervalMs,
    backend: header.backend,
    page_size: header.pageSize,
    target: `${header.target.pid} (${header.target.comm})`,
    processes: pids.size,
    mappings: trace.mappings.size,
    resident_pages_first: rounds[0]?.residentPages ?? 0,
    resident_pages_last: rounds[rounds.length - 1]?.residentPages ?? 0,
    dirty_pages: {
      mean: round1(counts.length ? sum / counts.length : 0),
      p50: quantile(counts, 0.5),
      p95: quantile(counts, 0.95),
      max: counts[counts.length - 1] ?? 0,
    },
    dirty_pages_per_s: round1(duration > 0 ? sum / (duration / 1000) : 0),
    distinct_dirty_pages: distinct.size,
    scan_ms_mean: round1(rounds.reduce((a, r) => a + r.scanMs, 0) / Math.max(1, rounds.length)),
    access_bits: header.accessBits,
    features: header.featureNames,
    end: trace.end?.reason ?? "truncated",
    ...(header.workload ? { workload: header.workload.name } : {}),
  };
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}
