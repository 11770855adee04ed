/**
 * The trace recorder: scans a process tree every interval, samples features, and appends each
 * round to a trace file as it goes (so a killed recorder still leaves a readable trace).
 *
 * @module
 */
import {
  encodeEnd,
  encodeHeader,
  encodeRound,
  type HostFacts,
  TRACE_VERSION,
  type TraceEnd,
  type TraceHeader,
  type TraceProcess,
  type TraceRound,
  type WorkloadInfo,
} from "../trace/mod.ts";
import { type DirtyTracker, TargetGoneError } from "../tracker/types.ts";
import { FeatureSampler } from "./features.ts";

/** Options of {@linkcode recordTrace}. */
export interface RecordTraceOptions {
  /** The tracker following the tree (the recorder closes it when done). */
  tracker: DirtyTracker;
  /** Root pid of the tree. */
  pid: number;
  /** Milliseconds between the starts of consecutive rounds. */
  intervalMs: number;
  /** Stop after this many rounds (round 0, the baseline, counts). */
  rounds?: number;
  /** Stop once this many milliseconds have elapsed. */
  durationMs?: number;
  /** Trace file to write; none = rounds are only reported. */
  output?: string;
  /** What is being traced, stored in the header. */
  workload?: WorkloadInfo;
  /** Stops recording cleanly (the end record says `interrupted`). */
  signal?: AbortSignal;
  /** Called after each round is written. */
  onRound?: (round: TraceRound, header: TraceHeader) => void;
}

/** What {@linkcode recordTrace} returns. */
export interface RecordTraceResult extends TraceEnd {
  /** The header written. */
  header: TraceHeader;
  /** Bytes written to the output file (0 without one). */
  bytesWritten: number;
}

/**
 * Record a trace of a process tree until the round count or duration is reached, the tree exits,
 * or `signal` aborts.
 */
export async function recordTrace(options: RecordTraceOptions): Promise<RecordTraceResult> {
  const { tracker, pid, intervalMs, rounds, durationMs, output, workload, signal, onRound } =
    options;
  if (!(intervalMs > 0)) throw new RangeError(`interval must be > 0 ms, got ${intervalMs}`);
  if (rounds === undefined && durationMs === undefined) {
    throw new RangeError("give a round count or a duration");
  }
  const sampler = new FeatureSampler(pid);
  const file = output
    ? Deno.openSync(output, { write: true, create: true, truncate: true })
    : undefined;
  let bytesWritten = 0;
  const write = (bytes: Uint8Array) => {
    if (!file) return;
    let off = 0;
    while (off < bytes.length) off += file.writeSync(bytes.subarray(off));
    bytesWritten += bytes.length;
  };
  let header: TraceHeader | undefined;
  let count = 0;
  let reason = "rounds";
  const startedAt = new Date();
  const t0 = performance.now();
  try {
    for (;;) {
      if (signal?.aborted) {
        reason = "interrupted";
        break;
      }
      let scan;
      try {
        scan = tracker.scan();
      } catch (e) {
        if (e instanceof TargetGoneError) {
          reason = "target-exited";
          break;
        }
        throw e;
      }
      const features = sampler.sample(scan.pids);
      if (!header) {
        header = makeHeader(
          tracker,
          pid,
          intervalMs,
          startedAt,
          scan.pids,
          sampler.names,
          workload,
        );
        write(encodeHeader(header));
      }
      const round: TraceRound = { ...scan, round: count, features };
      write(encodeRound(header, round));
      count++;
      onRound?.(round, header);
      if (rounds !== undefined && count >= rounds) break;
      const elapsed = performance.now() - t0;
      if (durationMs !== undefined && elapsed + intervalMs > durationMs + intervalMs / 2) {
        reason = "duration";
        break;
      }
      // Rounds start on a fixed grid; a scan that overran skips the missed ticks.
      const next = Math.ceil((elapsed + 0.001) / intervalMs) * intervalMs;
      await sleep(next - elapsed, signal);
    }
    if (!header) throw new TargetGoneError(pid);
    const end = { rounds: count, reason };
    write(encodeEnd(end));
    return { ...end, header, bytesWritten };
  } finally {
    file?.close();
    tracker.close();
  }
}

/** Facts about this machine for a trace header. */
export function hostFacts(): HostFacts {
  return {
    kernel: Deno.osRelease(),
    arch: Deno.build.arch,
    hostname: Deno.hostname(),
    cpus: navigator.hardwareConcurrency,
    memTotalBytes: Deno.systemMemoryInfo().total,
  };
}

function makeHeader(
  tracker: DirtyTracker,
  pid: number,
  intervalMs: number,
  startedAt: Date,
  pids: number[],
  featureNames: readonly string[],
  workload: WorkloadInfo | undefined,
): TraceHeader {
  const header: TraceHeader = {
    format: "u2cm-trace",
    version: TRACE_VERSION,
    pageSize: 4096,
    backend: tracker.backend,
    intervalMs,
    startedAt: startedAt.toISOString(),
    host: hostFacts(),
    target: { pid, comm: readProc(pid, "comm").trim(), cmdline: cmdline(pid) },
    processes: pids.map(processInfo),
    featureNames: [...featureNames],
    accessBits: tracker.accessBits,
  };
  if (workload) header.workload = workload;
  return header;
}

function processInfo(pid: number): TraceProcess {
  const stat = readProc(pid, "stat");
  const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1] ?? 0);
  return { pid, ppid, comm: readProc(pid, "comm").trim() };
}

function cmdline(pid: number): string[] {
  return readProc(pid, "cmdline").split("\0").filter((s) => s !== "");
}

function readProc(pid: number, file: string): string {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/${file}`);
  } catch {
    return "";
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
  });
}
