/**
 * `u2cm trace` (record a dirty-page trace of a process tree) and `u2cm trace info` (summarize one).
 *
 * @module
 */
import type { Command } from "commander";
import { recordTrace } from "../history/mod.ts";
import { readTraceFile, summarizeTrace, TraceFormatError, type TraceRound } from "../trace/mod.ts";
import { createTracker } from "../tracker/mod.ts";
import { pageSetSize } from "../tracker/types.ts";
import { CliError, ExitCode } from "./errors.ts";
import { parseChoice, parseNumberInRange, parsePositiveInt, requireProcess } from "./options.ts";
import { trackerError } from "./tracker_errors.ts";

const FORMATS = ["jsonl", "table"] as const;
const BACKENDS = ["auto", "softdirty", "hash", "uffd-wp"] as const;

/** Add `trace` and `trace info` to the program. */
export function register(program: Command): void {
  const trace = program
    .command("trace")
    .description("record which pages a process tree dirties, round by round")
    .enablePositionalOptions()
    .option("--pid <pid>", "root pid of the process tree to trace")
    .option("--interval <ms>", "milliseconds between rounds", "100")
    .option("--rounds <n>", "stop after N rounds (the baseline round 0 counts)")
    .option("--duration <s>", "stop after S seconds")
    .option("-o, --output <file>", "write a binary trace file")
    .option("--backend <name>", `tracker backend: ${BACKENDS.join("|")}`, "auto")
    .option("--format <format>", `stdout format: ${FORMATS.join("|")}`, "table")
    .option("--access-bits", "also record access bits from /proc/kpageflags (root)")
    .option("--workload <name>", "workload name stored in the trace header")
    .option("--load <text>", "load description stored in the trace header")
    .action(async (opts) => await runTrace(opts));
  trace
    .command("info <file>")
    .description("summarize a trace file")
    .option("--format <format>", "json|table", "table")
    .action(async (file: string, opts: { format: string }) => await runInfo(file, opts.format));
}

interface TraceOptions {
  pid?: string;
  interval: string;
  rounds?: string;
  duration?: string;
  output?: string;
  backend: string;
  format: string;
  workload?: string;
  load?: string;
  accessBits?: boolean;
}

async function runTrace(opts: TraceOptions): Promise<void> {
  if (opts.pid === undefined) throw new CliError("missing --pid <pid>", ExitCode.Usage);
  const pid = parsePositiveInt("--pid", opts.pid);
  const intervalMs = parseNumberInRange("--interval", opts.interval, 1, 3_600_000);
  if ((opts.rounds === undefined) === (opts.duration === undefined)) {
    throw new CliError("give exactly one of --rounds N or --duration S", ExitCode.Usage);
  }
  const rounds = opts.rounds === undefined ? undefined : parsePositiveInt("--rounds", opts.rounds);
  const durationMs = opts.duration === undefined
    ? undefined
    : parseNumberInRange("--duration", opts.duration, 0.001, 7 * 86_400) * 1000;
  const format = parseChoice("--format", opts.format, FORMATS);
  const backend = parseChoice("--backend", opts.backend, BACKENDS);
  requireProcess(pid);

  let tracker;
  try {
    tracker = createTracker({ pid, backend, accessBits: opts.accessBits === true });
  } catch (e) {
    throw trackerError(e, pid);
  }
  const out = new TextEncoder();
  const print = (line: string) => Deno.stdout.writeSync(out.encode(line + "\n"));
  const progress = Deno.stderr.isTerminal() ? new StatusLine() : undefined;
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  if (format === "table") print("round  elapsed_ms  scan_ms  dirty_pages  resident_pages  backend");
  try {
    const result = await recordTrace({
      tracker,
      pid,
      intervalMs,
      rounds,
      durationMs,
      output: opts.output,
      workload: opts.workload ? { name: opts.workload, load: opts.load } : undefined,
      signal: controller.signal,
      onRound: (round, header) => {
        const row = roundRow(round, header.backend);
        if (format === "jsonl") print(JSON.stringify(row));
        else print(tableRow(row));
        progress?.show(`round ${round.round} · ${row.dirty_pages} dirty · ${row.scan_ms} ms scan`);
      },
    });
    progress?.clear();
    console.error(
      `u2cm: traced ${result.rounds} rounds (${result.reason}) with the ${result.header.backend} backend` +
        (opts.output ? `; wrote ${result.bytesWritten} bytes to ${opts.output}` : ""),
    );
  } catch (e) {
    progress?.clear();
    throw trackerError(e, pid);
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}

async function runInfo(file: string, formatOption: string): Promise<void> {
  const format = parseChoice("--format", formatOption, ["json", "table"] as const);
  let trace;
  try {
    trace = await readTraceFile(file);
  } catch (e) {
    if (e instanceof TraceFormatError) throw new CliError(e.message, ExitCode.BadInput);
    throw e;
  }
  const summary = summarizeTrace(trace);
  if (format === "json") {
    console.log(JSON.stringify(summary, null, 2));
    return;
  }
  for (const [key, value] of Object.entries(summary)) {
    const text = typeof value === "object" && !Array.isArray(value)
      ? Object.entries(value).map(([k, v]) => `${k} ${v}`).join(", ")
      : Array.isArray(value)
      ? value.join(", ")
      : String(value);
    console.log(`${key.padEnd(22)} ${text}`);
  }
}

function roundRow(round: TraceRound, backend: string) {
  return {
    round: round.round,
    elapsed_ms: Math.round(round.elapsedMs * 10) / 10,
    scan_ms: Math.round(round.scanMs * 100) / 100,
    dirty_pages: pageSetSize(round.dirty),
    resident_pages: round.residentPages,
    backend,
    processes: round.pids.length,
  };
}

function tableRow(r: ReturnType<typeof roundRow>): string {
  return `${String(r.round).padStart(5)}  ${String(r.elapsed_ms).padStart(10)}  ${
    String(r.scan_ms).padStart(7)
  }  ${String(r.dirty_pages).padStart(11)}  ${String(r.resident_pages).padStart(14)}  ${r.backend}`;
}

/** A one-line status on a terminal's stderr, redrawn in place. */
class StatusLine {
  #enc = new TextEncoder();
  show(text: string): void {
    Deno.stderr.writeSync(this.#enc.encode(`\r\x1b[2K${text}`));
  }
  clear(): void {
    Deno.stderr.writeSync(this.#enc.encode("\r\x1b[2K"));
  }
}
