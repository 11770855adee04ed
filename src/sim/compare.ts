/**
 * Run a set of policies over a set of traces and summarise them as median ratios to P.Haul and
 * to the oracle.
 *
 * @module
 */
import { createPolicy } from "../policy/registry.ts";
import type { RoundRecord } from "../policy/types.ts";
import type { Trace } from "../trace/types.ts";
import { oracleSearch } from "./oracle.ts";
import { MovingWindowProvider } from "../predict/moving_window.ts";
import type { PredictionProvider } from "../predict/provider.ts";
import { type SimConfig, type SimResult, simulate } from "./simulate.ts";
import { TraceTimeline } from "./timeline.ts";

/** The policies `all` stands for. */
export const ALL_POLICIES = [
  "phaul",
  "lxd",
  "qemu",
  "stop-and-copy",
  "post-copy",
  "fixed-3",
  "u2c",
  "hybrid",
  "oracle",
];

/** The policies that look at a prediction (the others never get a provider: it costs time). */
const PREDICTIVE = new Set(["u2c", "hybrid"]);

/** One row of a comparison. */
export interface ComparisonRow {
  /** Trace name. */
  trace: string;
  /** Policy name. */
  policy: string;
  /** Total migration time in ms. */
  total_ms: number;
  /** Downtime in ms. */
  downtime_ms: number;
  /** Bytes sent. */
  bytes: number;
  /** Pre-copy rounds. */
  rounds: number;
  /** Pages deferred over all rounds. */
  deferred_pages: number;
  /** Pages sent more than once. */
  pages_resent: number;
  /** How it ended. */
  mode: string;
  /** Post-copy remote faults. */
  remote_faults: number;
  /** Highest throttle in percent. */
  max_throttle_percent: number;
  /** Whether the result meets the objective's downtime limit (set by the oracle's floor). */
  within_downtime_limit: boolean;
  /** The pre-copy rounds. */
  round_log: RoundRecord[];
}

/** Per-policy medians over traces. */
export interface PolicySummary {
  /** Median total time / phaul's. */
  total_vs_phaul: number;
  /** Median downtime / phaul's. */
  downtime_vs_phaul: number;
  /** Median bytes / phaul's. */
  bytes_vs_phaul: number;
  /** Median total time / the oracle's. */
  total_vs_oracle: number;
  /** Median downtime / the oracle's. */
  downtime_vs_oracle: number;
  /** Traces on which the downtime limit was met. */
  within_limit: number;
  /** Traces compared. */
  traces: number;
}

/** A whole comparison. */
export interface Comparison {
  /** Every (trace, policy) result. */
  results: ComparisonRow[];
  /** Per-policy medians. */
  summary: Record<string, PolicySummary>;
}

/** Median of a list (NaN when empty). */
export function median(values: number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

function row(trace: string, r: SimResult, limit: number): ComparisonRow {
  return {
    trace,
    policy: r.policy,
    total_ms: Math.round(r.totalMs * 10) / 10,
    downtime_ms: Math.round(r.downtimeMs * 10) / 10,
    bytes: Math.round(r.bytes),
    rounds: r.rounds,
    deferred_pages: r.deferredPages,
    pages_resent: r.pagesResent,
    mode: r.mode,
    remote_faults: r.remoteFaults,
    max_throttle_percent: r.maxThrottlePercent,
    within_downtime_limit: r.mode === "post-copy" || r.downtimeMs <= limit + 1e-6,
    round_log: r.roundLog,
  };
}

/**
 * Compare policies on traces.
 *
 * @param traces named traces
 * @param policies policy names (`oracle` runs the oracle search)
 * @param config link and objective
 * @param providerFactory the predictor given to u2c/hybrid @default a MovingWindowProvider
 * @param onPolicy called after each (trace, policy) with the number done so far
 */
export async function compare(
  traces: { name: string; trace: Trace }[],
  policies: string[],
  config: SimConfig,
  providerFactory: () => PredictionProvider = () => new MovingWindowProvider(20, 12),
  onPolicy?: (done: number, policy: string) => void,
): Promise<Comparison> {
  const results: ComparisonRow[] = [];
  for (const { name, trace } of traces) {
    const tl = new TraceTimeline(trace);
    const oracle = await oracleSearch(tl, config);
    for (const p of policies) {
      const r = p === "oracle" ? oracle : await simulate(
        tl,
        createPolicy(p),
        config,
        PREDICTIVE.has(p) ? providerFactory() : undefined,
      );
      results.push(row(name, r, oracle.downtimeLimitMs));
      onPolicy?.(results.length, p);
    }
  }
  return { results, summary: summarize(results, policies) };
}

function summarize(results: ComparisonRow[], policies: string[]): Record<string, PolicySummary> {
  const byTrace = new Map<string, Map<string, ComparisonRow>>();
  for (const r of results) {
    if (!byTrace.has(r.trace)) byTrace.set(r.trace, new Map());
    byTrace.get(r.trace)!.set(r.policy, r);
  }
  const ratio = (a: number, b: number | undefined) => b === undefined || b === 0 ? NaN : a / b;
  const out: Record<string, PolicySummary> = {};
  for (const p of policies) {
    const rows = [...byTrace.values()].map((m) => ({ r: m.get(p)!, m })).filter((x) => x.r);
    const get = (k: "total_ms" | "downtime_ms" | "bytes", base: string) =>
      median(rows.map(({ r, m }) => ratio(r[k], m.get(base)?.[k])));
    out[p] = {
      total_vs_phaul: get("total_ms", "phaul"),
      downtime_vs_phaul: get("downtime_ms", "phaul"),
      bytes_vs_phaul: get("bytes", "phaul"),
      total_vs_oracle: get("total_ms", "oracle"),
      downtime_vs_oracle: get("downtime_ms", "oracle"),
      within_limit: rows.filter(({ r }) => r.within_downtime_limit).length,
      traces: rows.length,
    };
  }
  return out;
}
