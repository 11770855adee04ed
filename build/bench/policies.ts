/**
 * Policy evaluation (prints one JSON object): every corpus trace × {100 Mbit, 1 Gbit, 10 Gbit} ×
 * three start points, every policy replayed by the simulator; u2c and hybrid see the two-phase
 * predictor with the model held out from the trace's workload. Per case: total time, downtime and
 * bytes per policy; summary: medians of the ratios to `phaul` and to `oracle`, and the goals of
 * the policy issue checked against them. A second pass gives u2c a downtime budget of 0.7× P.Haul's
 * downtime in the same case (`u2c-budget`): deferral and throttling then work towards it.
 *
 * `u2c-bias` is u2c with the old bias correction (predicted counts scaled by the last rounds'
 * actual / predicted ratio), to measure what that correction does with round-window predictions.
 * The summary also gives u2c's ratios to the oracle per link (median, and the worst downtime)
 * and the count error of the predictions made before u2c's rounds.
 *
 * Usage: deno run -A build/bench/policies.ts [--quick] [--predictor NAME] [traces…]
 *
 * @module
 */
import { type PredictorName, replayProviderFactory } from "../../src/predict/mod.ts";
import { createPolicy } from "../../src/policy/mod.ts";
import {
  compare,
  type ComparisonRow,
  CRIU_COSTS,
  median,
  type SimConfig,
  simulate,
} from "../../src/sim/mod.ts";
import { readTraceFile } from "../../src/trace/mod.ts";

const argv = [...Deno.args];
const pAt = argv.indexOf("--predictor");
const predictor = (pAt >= 0 ? argv.splice(pAt, 2)[1] : "u2c") as PredictorName;
const args = argv.filter((a) => a !== "--quick");
const quick = argv.includes("--quick");
const corpus = new URL("../../models/corpus/", import.meta.url).pathname;
const models = new URL("../../models", import.meta.url).pathname;
const files = args.length > 0
  ? args
  : [...Deno.readDirSync(corpus)].map((e) => e.name).filter((n) => n.endsWith(".u2ct.gz")).sort()
    .map((n) => corpus + n);
const BANDWIDTHS: [string, number][] = [["100mbit", 12.5e6], ["1gbit", 125e6], ["10gbit", 1.25e9]];
const STARTS = quick ? [0.1] : [0.1, 0.4, 0.7];
const POLICIES = ["phaul", "lxd", "qemu", "stop-and-copy", "fixed-3", "u2c", "hybrid", "oracle"];

interface Case {
  trace: string;
  bandwidth: string;
  start: number;
  rows: Record<string, Pick<ComparisonRow, "total_ms" | "downtime_ms" | "bytes" | "rounds">>;
  /** |predicted − actual| / actual of u2c's rounds. */
  u2cRoundErrors: number[];
}

const cases: Case[] = [];
const t0 = performance.now();
for (const file of files) {
  const trace = await readTraceFile(file);
  const duration = trace.rounds.at(-1)!.elapsedMs - trace.rounds[0].elapsedMs;
  const factory = await replayProviderFactory(predictor, models, trace.header);
  for (const [bw, bps] of BANDWIDTHS) {
    for (const start of STARTS) {
      const config: SimConfig = {
        ...CRIU_COSTS,
        bandwidthBps: bps,
        rttMs: 1,
        startMs: start * duration,
      };
      const { results } = await compare([{ name: file, trace }], POLICIES, config, factory);
      const rows: Case["rows"] = {};
      const u2cRoundErrors: number[] = [];
      for (const r of results) {
        if (r.policy === "u2c") {
          for (const x of r.round_log) {
            if (x.predictedDirty === undefined || x.pagesDirtied === 0) continue;
            u2cRoundErrors.push(Math.abs(x.predictedDirty - x.pagesDirtied) / x.pagesDirtied);
          }
        }
        rows[r.policy] = {
          total_ms: r.total_ms,
          downtime_ms: r.downtime_ms,
          bytes: r.bytes,
          rounds: r.rounds,
        };
      }
      const budgetMs = 0.7 * rows.phaul.downtime_ms;
      const b = await simulate(
        trace,
        createPolicy("u2c"),
        { ...config, maxDowntimeMs: budgetMs },
        factory(),
      );
      rows["u2c-budget"] = {
        total_ms: Math.round(b.totalMs * 10) / 10,
        downtime_ms: Math.round(b.downtimeMs * 10) / 10,
        bytes: Math.round(b.bytes),
        rounds: b.rounds,
      };
      const biased = await simulate(
        trace,
        createPolicy("u2c", { biasCorrection: true }),
        config,
        factory(),
      );
      rows["u2c-bias"] = {
        total_ms: Math.round(biased.totalMs * 10) / 10,
        downtime_ms: Math.round(biased.downtimeMs * 10) / 10,
        bytes: Math.round(biased.bytes),
        rounds: biased.rounds,
      };
      cases.push({ trace: file.split("/").pop()!, bandwidth: bw, start, rows, u2cRoundErrors });
    }
  }
}

const ratio = (c: Case, p: string, base: string, k: "total_ms" | "downtime_ms" | "bytes") =>
  c.rows[p][k] / c.rows[base][k];
/** A case where pre-copy cannot pay off: plain stop-and-copy has no more downtime than P.Haul. */
const nonConverging = (c: Case) => c.rows["stop-and-copy"].downtime_ms <= c.rows.phaul.downtime_ms;
const summary: Record<string, Record<string, number>> = {};
for (const p of [...POLICIES, "u2c-budget", "u2c-bias"]) {
  summary[p] = {
    total_vs_phaul: median(cases.map((c) => ratio(c, p, "phaul", "total_ms"))),
    downtime_vs_phaul: median(cases.map((c) => ratio(c, p, "phaul", "downtime_ms"))),
    bytes_vs_phaul: median(cases.map((c) => ratio(c, p, "phaul", "bytes"))),
    total_vs_oracle: median(cases.map((c) => ratio(c, p, "oracle", "total_ms"))),
    downtime_vs_oracle: median(cases.map((c) => ratio(c, p, "oracle", "downtime_ms"))),
    max_downtime_vs_phaul: Math.max(...cases.map((c) => ratio(c, p, "phaul", "downtime_ms"))),
  };
}
const byLink: Record<string, Record<string, number>> = {};
for (const [bw] of BANDWIDTHS) {
  const cs = cases.filter((c) => c.bandwidth === bw);
  const errors = cs.flatMap((c) => c.u2cRoundErrors);
  byLink[bw] = {
    total_vs_oracle: median(cs.map((c) => ratio(c, "u2c", "oracle", "total_ms"))),
    downtime_vs_oracle: median(cs.map((c) => ratio(c, "u2c", "oracle", "downtime_ms"))),
    max_downtime_vs_oracle: Math.max(...cs.map((c) => ratio(c, "u2c", "oracle", "downtime_ms"))),
    cases_downtime_over_1_5_oracle: cs.filter((c) =>
      ratio(c, "u2c", "oracle", "downtime_ms") > 1.5
    ).length,
    bias_total_vs_oracle: median(cs.map((c) => ratio(c, "u2c-bias", "oracle", "total_ms"))),
    bias_downtime_vs_oracle: median(cs.map((c) => ratio(c, "u2c-bias", "oracle", "downtime_ms"))),
    round_count_error_median: median(errors),
    rounds: errors.length,
  };
}
const nc = cases.filter(nonConverging);
const u2c = summary.u2c;
const goals = {
  total_vs_phaul_le_0_6: u2c.total_vs_phaul <= 0.6,
  downtime_vs_phaul_le_1_05: u2c.downtime_vs_phaul <= 1.05,
  total_vs_oracle_le_1_15: u2c.total_vs_oracle <= 1.15,
  downtime_vs_oracle_le_1_15: u2c.downtime_vs_oracle <= 1.15,
  non_converging_downtime_vs_phaul_le_0_5:
    median(nc.map((c) => ratio(c, "u2c", "phaul", "downtime_ms"))) <= 0.5,
  no_case_downtime_over_1_2_phaul: u2c.max_downtime_vs_phaul <= 1.2,
  budget_downtime_vs_phaul_le_0_7: summary["u2c-budget"].downtime_vs_phaul <= 0.7,
  every_link_within_1_15_oracle: Object.values(byLink).every((l) =>
    l.total_vs_oracle <= 1.15 && l.downtime_vs_oracle <= 1.15
  ),
  no_case_downtime_over_1_5_oracle: Object.values(byLink).every((l) =>
    l.cases_downtime_over_1_5_oracle === 0
  ),
};
console.log(JSON.stringify({
  bench: "policies",
  cases: cases.length,
  non_converging_cases: nc.length,
  non_converging_u2c_downtime_vs_phaul: median(
    nc.map((c) => ratio(c, "u2c", "phaul", "downtime_ms")),
  ),
  seconds: Math.round((performance.now() - t0) / 100) / 10,
  predictor,
  summary,
  by_link: byLink,
  goals,
  results: cases,
}));
