/**
 * `u2cm simulate`: replay a trace through stop-and-copy policies on a modelled link.
 *
 * @module
 */
import type { Command } from "commander";
import { POLICY_NAMES, UnknownPolicyError } from "../policy/mod.ts";
import {
  ModelError,
  type PredictionProvider,
  PREDICTOR_NAMES,
  type PredictorName,
  replayProviderFactory,
} from "../predict/mod.ts";
import type { Trace } from "../trace/mod.ts";
import { bundledModelsDir } from "../ops/assets.ts";
import { createProgress } from "../ops/progress.ts";
import {
  ALL_POLICIES,
  compare,
  type ComparisonRow,
  CRIU_COSTS,
  parseBandwidth,
  type SimConfig,
} from "../sim/mod.ts";
import { CliError, ExitCode } from "./errors.ts";
import { parseChoice, parseNumberInRange } from "./options.ts";
import { readTraceArgument } from "./trace_input.ts";

const FORMATS = ["json", "table"] as const;
const PREDICTORS = PREDICTOR_NAMES;

/** Options of `simulate` as commander hands them over. */
interface SimulateOptions {
  trace: string;
  bandwidth: string;
  rtt: string;
  policy: string;
  maxDowntime?: string;
  downtimeSlack: string;
  compression: string;
  start?: string;
  predictor: string;
  engine: string;
  modelsDir: string;
  format: string;
  report?: string;
}

/**
 * One row of `simulate --format json`. The first six fields are the stable interface; the rest
 * are extras.
 */
export type SimulateRow = {
  /** Policy name. */
  policy: string;
  /** Start of migration to the workload running on the target (post-copy: last page arrived). */
  total_ms: number;
  /** Time the workload was frozen. */
  downtime_ms: number;
  /** Bytes on the wire. */
  bytes_sent: number;
  /** Pre-copy rounds before the final phase. */
  precopy_rounds: number;
  /** Pages sent more than once. */
  pages_resent: number;
  /** How the migration ended: `stop-and-copy` or `post-copy`. */
  mode: string;
  /** Pages held back over all rounds. */
  deferred_pages: number;
  /** Post-copy: pages the workload faulted on while they were still remote. */
  remote_faults: number;
  /** Highest CPU throttle applied, percent. */
  max_throttle_percent: number;
  /** Whether the downtime meets the objective's limit. */
  within_downtime_limit: boolean;
  /** The pre-copy rounds. */
  rounds: {
    index: number;
    pages_sent: number;
    pages_dirtied: number;
    predicted_dirty?: number;
    duration_ms: number;
  }[];
};

/** Add `simulate` to the program. */
export function register(program: Command): void {
  program
    .command("simulate")
    .description("replay a trace through migration policies on a modelled link")
    .requiredOption("--trace <file>", "trace file (.u2ct or .u2ct.gz)")
    .option("--bandwidth <rate>", "link bandwidth, e.g. 100mbit, 1gbit, 125MB/s", "1gbit")
    .option("--rtt <ms>", "link round-trip time in ms", "1")
    .option(
      "--policy <list>",
      `comma-separated policies or "all" (${POLICY_NAMES.join(", ")})`,
      "all",
    )
    .option("--max-downtime <ms>", "absolute downtime budget (default: best reachable + slack)")
    .option("--downtime-slack <fraction>", "tolerated downtime above the best reachable", "0.1")
    .option("--compression <ratio>", "page bytes are divided by this on the wire", "1")
    .option("--start <ms>", "trace time at which the migration starts (default: 10 rounds in)")
    .option("--engine <name>", "final-phase model: predump (soft-dirty chain) | delta", "predump")
    .option("--predictor <name>", `what u2c/hybrid see: ${PREDICTORS.join("|")}`, "u2c")
    .option("--models-dir <dir>", "directory with the predictor models", bundledModelsDir())
    .option("--format <format>", `output: ${FORMATS.join("|")}`, "table")
    .option("--report <file>", "also write a self-contained HTML report (SVG charts)")
    .action(async (opts: SimulateOptions) => await runSimulate(opts));
}

async function runSimulate(opts: SimulateOptions): Promise<void> {
  const format = parseChoice("--format", opts.format, FORMATS);
  const predictor = parseChoice("--predictor", opts.predictor, PREDICTORS);
  const engine = parseChoice("--engine", opts.engine, ["predump", "delta"] as const);
  let bandwidthBps: number;
  try {
    bandwidthBps = parseBandwidth(opts.bandwidth);
  } catch (e) {
    throw new CliError(`--bandwidth: ${(e as Error).message}`, ExitCode.Usage);
  }
  const config: SimConfig = {
    ...CRIU_COSTS,
    bandwidthBps,
    engine,
    rttMs: parseNumberInRange("--rtt", opts.rtt, 0, 60_000),
    downtimeSlack: parseNumberInRange("--downtime-slack", opts.downtimeSlack, 0, 10),
    compressionRatio: parseNumberInRange("--compression", opts.compression, 1, 1000),
  };
  if (opts.maxDowntime !== undefined) {
    config.maxDowntimeMs = parseNumberInRange("--max-downtime", opts.maxDowntime, 0, 3_600_000);
  }
  if (opts.start !== undefined) {
    config.startMs = parseNumberInRange("--start", opts.start, 0, Number.MAX_SAFE_INTEGER);
  }
  const policies = opts.policy === "all"
    ? [...ALL_POLICIES]
    : opts.policy.split(",").map((p) => p.trim()).filter((p) => p !== "");
  const trace = await readTraceArgument(opts.trace);
  if (trace.rounds.length < 2) {
    throw new CliError(`${opts.trace}: trace has no rounds to replay`, ExitCode.BadInput);
  }
  const providers = await providerFactory(predictor, opts.modelsDir, trace);
  let rows: ComparisonRow[];
  try {
    const progress = createProgress({
      label: "simulate",
      total: policies.length,
      unit: "policies",
    });
    try {
      rows = (await compare(
        [{ name: opts.trace, trace }],
        policies,
        config,
        providers,
        (done, policy) => progress.update(done, policy),
      )).results;
    } finally {
      progress.stop();
    }
  } catch (e) {
    if (e instanceof UnknownPolicyError) throw new CliError(e.message, ExitCode.Usage);
    throw e;
  }
  const out = rows.map(toSimulateRow);
  if (opts.report) await writeReport(opts.report, opts.trace, bandwidthBps, out);
  if (format === "json") console.log(JSON.stringify(out));
  else printTable(out);
}

/**
 * The prediction providers u2c and hybrid get (see `replayProviderFactory` in src/predict), with
 * model problems as the CLI's bad-input error.
 *
 * @param name predictor name
 * @param modelsDir directory with the models
 * @param trace the trace to be replayed
 */
async function providerFactory(
  name: PredictorName,
  modelsDir: string,
  trace: Trace,
): Promise<() => PredictionProvider> {
  try {
    return await replayProviderFactory(name, modelsDir, trace.header);
  } catch (e) {
    if (e instanceof ModelError) throw new CliError(e.message, ExitCode.BadInput);
    throw e;
  }
}

/** Convert a comparison row into the CLI's JSON row. */
export function toSimulateRow(r: ComparisonRow): SimulateRow {
  return {
    policy: r.policy,
    total_ms: r.total_ms,
    downtime_ms: r.downtime_ms,
    bytes_sent: r.bytes,
    precopy_rounds: r.rounds,
    pages_resent: r.pages_resent,
    mode: r.mode,
    deferred_pages: r.deferred_pages,
    remote_faults: r.remote_faults,
    max_throttle_percent: r.max_throttle_percent,
    within_downtime_limit: r.within_downtime_limit,
    rounds: r.round_log.map((x) => ({
      index: x.index,
      pages_sent: x.pagesSent,
      pages_dirtied: x.pagesDirtied,
      predicted_dirty: x.predictedDirty === undefined ? undefined : Math.round(x.predictedDirty),
      duration_ms: Math.round(x.durationMs * 10) / 10,
    })),
  };
}

async function writeReport(
  file: string,
  trace: string,
  bandwidthBps: number,
  results: SimulateRow[],
): Promise<void> {
  const { renderSimulationReport } = await import("../report/mod.ts");
  const html = renderSimulationReport({ trace, bandwidth_bps: bandwidthBps, results });
  try {
    await Deno.writeTextFile(file, html);
  } catch (e) {
    throw new CliError(`--report ${file}: cannot write: ${(e as Error).message}`, ExitCode.Failure);
  }
}

function printTable(rows: SimulateRow[]): void {
  const head = ["policy", "total_ms", "downtime_ms", "MiB_sent", "rounds", "resent", "mode"];
  const cells = rows.map((r) => [
    r.policy,
    r.total_ms.toFixed(1),
    r.downtime_ms.toFixed(1),
    (r.bytes_sent / 1048576).toFixed(1),
    String(r.precopy_rounds),
    String(r.pages_resent),
    r.mode + (r.within_downtime_limit ? "" : " (over limit)"),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) =>
    c.map((v, i) => (i === 0 || i === 6 ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join("  ");
  console.log(line(head));
  for (const c of cells) console.log(line(c));
}
