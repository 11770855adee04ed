/**
 * The objective and the oracle: minimise total time subject to downtime ≤ (1 + slack) × the best
 * downtime reachable by pre-copy/stop-and-copy (or ≤ an absolute budget), searching every stop
 * round with and without perfect deferral, the trace's future in hand.
 *
 * @module
 */
import { oraclePolicy } from "../policy/u2c.ts";
import { FutureProvider } from "./future.ts";
import { replay, type SimConfig, type SimResult } from "./simulate.ts";
import { TraceTimeline } from "./timeline.ts";
import type { Trace } from "../trace/types.ts";

/** Options of the oracle search. */
export interface OracleOptions {
  /** Highest stop round tried. @default 15 */
  maxStopRound?: number;
  /** Also try perfect deferral. @default true */
  defer?: boolean;
}

/** The oracle's answer: the best plan and the downtime floor it measured. */
export interface OracleResult extends SimResult {
  /** Pre-copy rounds of the chosen plan. */
  stopAfter: number;
  /** Whether the chosen plan defers. */
  deferring: boolean;
  /** Best downtime any plan reached, in ms. */
  bestDowntimeMs: number;
  /** The downtime limit of the objective, in ms. */
  downtimeLimitMs: number;
}

/**
 * The downtime limit of the objective.
 *
 * @param bestDowntimeMs best downtime reachable
 * @param config slack or absolute budget
 */
export function downtimeLimit(bestDowntimeMs: number, config: SimConfig): number {
  return config.maxDowntimeMs ?? bestDowntimeMs * (1 + (config.downtimeSlack ?? 0.1));
}

/**
 * Pick by the objective: least total time among results within the limit (ties: less downtime);
 * when none is within it, the least downtime.
 *
 * @param results candidates
 * @param limitMs downtime limit
 */
export function pickByObjective<T extends SimResult>(results: T[], limitMs: number): T {
  const ok = results.filter((r) => r.downtimeMs <= limitMs + 1e-9);
  const pool = ok.length > 0 ? ok : results;
  return pool.reduce((best, r) => {
    if (ok.length === 0) return r.downtimeMs < best.downtimeMs ? r : best;
    if (r.totalMs < best.totalMs - 1e-9) return r;
    if (Math.abs(r.totalMs - best.totalMs) <= 1e-9 && r.downtimeMs < best.downtimeMs) return r;
    return best;
  });
}

/**
 * Search every oracle plan on the trace and return the best by the objective.
 *
 * @param source trace or timeline
 * @param config link, costs, slack or budget
 * @param options search range
 */
export async function oracleSearch(
  source: Trace | TraceTimeline,
  config: SimConfig,
  options: OracleOptions = {},
): Promise<OracleResult> {
  const tl = source instanceof TraceTimeline ? source : new TraceTimeline(source);
  const { maxStopRound = 15, defer = true } = options;
  // "Stop after k rounds" plans are prefixes of one run that never stops before
  // maxStopRound: one replay per deferral mode prices every k.
  const byMode: SimResult[][] = [];
  for (const d of defer ? [false, true] : [false]) {
    const found: SimResult[] = [];
    await replay(
      tl,
      oraclePolicy({ stopAfter: maxStopRound, defer: d }),
      config,
      new FutureProvider(tl),
      (r) => found.push(r),
    );
    byMode.push(found);
  }
  const candidates: (SimResult & { stopAfter: number; deferring: boolean })[] = [];
  for (let k = 0; k <= maxStopRound; k++) {
    for (const [m, d] of (defer && k > 0 ? [false, true] : [false]).entries()) {
      const r = byMode[m][k];
      if (r) candidates.push({ ...r, policy: "oracle", stopAfter: k, deferring: d });
    }
  }
  const best = Math.min(...candidates.map((c) => c.downtimeMs));
  const limit = downtimeLimit(best, config);
  const chosen = pickByObjective(candidates, limit);
  return { ...chosen, policy: "oracle", bestDowntimeMs: best, downtimeLimitMs: limit };
}
