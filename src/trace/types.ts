/**
 * The in-memory shape of a u2cm trace: a header and one record per tracker round.
 *
 * @module
 */
import type { Mapping, PageSet, TrackerBackendName } from "../tracker/types.ts";

/** Current trace format version written by this code. */
export const TRACE_VERSION = 1;

/** Facts about the machine a trace was recorded on. */
export interface HostFacts {
  /** `uname -r`. */
  kernel: string;
  /** `x86_64`, `aarch64`, … */
  arch: string;
  /** Host name. */
  hostname: string;
  /** Online CPUs. */
  cpus: number;
  /** Total memory in bytes. */
  memTotalBytes: number;
}

/** One process of the traced tree, as first seen. */
export interface TraceProcess {
  /** Process id. */
  pid: number;
  /** Parent process id. */
  ppid: number;
  /** Short command name (`/proc/PID/comm`). */
  comm: string;
}

/** Optional description of what was traced, for corpus manifests. */
export interface WorkloadInfo {
  /** Short workload name (`redis`, `memcached`, …). */
  name: string;
  /** Load description (`SET 50%`, `pgbench -c 4`, …). */
  load?: string;
  /** Command line that started the workload. */
  commandLine?: string;
}

/** The header of a trace file. */
export interface TraceHeader {
  /** Always `u2cm-trace`. */
  format: "u2cm-trace";
  /** Format version, {@linkcode TRACE_VERSION} when written by this code. */
  version: number;
  /** Page size in bytes. */
  pageSize: number;
  /** Tracker backend that produced the dirty sets. */
  backend: TrackerBackendName;
  /** Requested interval between rounds, in milliseconds. */
  intervalMs: number;
  /** ISO-8601 time the trace started. */
  startedAt: string;
  /** Machine facts. */
  host: HostFacts;
  /** The traced root process and its command. */
  target: { pid: number; comm: string; cmdline: string[] };
  /** The process tree at the start. */
  processes: TraceProcess[];
  /** Names of the feature values stored with every round, in order. */
  featureNames: string[];
  /** Whether rounds carry access bits. */
  accessBits: boolean;
  /** What was traced, when known. */
  workload?: WorkloadInfo;
}

/** One round of a trace: what the tracker saw plus the sampled features. */
export interface TraceRound {
  /** Round number, 0 = baseline. */
  round: number;
  /** Milliseconds since the trace started. */
  elapsedMs: number;
  /** Time the scan took, in milliseconds. */
  scanMs: number;
  /** Resident pages in tracked mappings. */
  residentPages: number;
  /** Pids of the tree alive at this round. */
  pids: number[];
  /** Mappings that appeared before this round. */
  added: Mapping[];
  /** Ids of mappings that vanished before this round. */
  removed: number[];
  /** Pages written since the previous round. */
  dirty: PageSet;
  /** Pages referenced since the previous round, when `header.accessBits`. */
  accessed?: PageSet;
  /** Feature values in `header.featureNames` order (NaN where unavailable). */
  features: Float64Array;
}

/** How a trace ended. */
export interface TraceEnd {
  /** Rounds written. */
  rounds: number;
  /** Why it ended: `rounds`, `duration`, `target-exited`, `interrupted`, or an error message. */
  reason: string;
}

/** A whole trace in memory. */
export interface Trace {
  /** The header. */
  header: TraceHeader;
  /** All rounds in order. */
  rounds: TraceRound[];
  /** Every mapping ever seen, by id. */
  mappings: Map<number, Mapping>;
  /** The end record, or undefined when the file was cut short. */
  end?: TraceEnd;
}

/** Thrown when a trace file is malformed; names the file and the problem. */
export class TraceFormatError extends Error {
  /**
   * @param source file name (or `<memory>`)
   * @param problem what is wrong
   */
  constructor(readonly source: string, readonly problem: string) {
    super(`${source}: ${problem}`);
    this.name = "TraceFormatError";
  }
}
