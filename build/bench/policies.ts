/**
 * Policy evaluation (prints one JSON object): every corpus trace × {100 Mbit, 1 Gbit, 10 Gbit} ×
 * three start points, every policy replayed by the simulator; u2c and hybrid see the two-phase
 * predictor with the model held out from the trace's workload. Per case: total time, downtime and
 * bytes per policy; summary: medians of the ratios to `phaul` and to `oracle`, and the goals of
 * the policy issue checked against them. A second pass gives u2c a downtime budget of 0.7× P.Haul's
 * downtime in the same case (`u2c-budget`): deferral and throttling then work towards it.
 *
 * Usage: deno run -A build/bench/policies.ts [--quick] [traces…]
 *
 * @module
 */
import { replayProviderFactory } from "../../src/predict/mod.ts";
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

const args = Deno.args.filter((a) => a !== "--quick");
const quick = Deno.args.includes("--quick");
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
}

const cases: Case[] = [];
const t0 = performance.now();
for (const file of files) {
  const trace = await readTraceFile(file);
  const duration = trace.rounds.at(-1)!.elapsedMs - trace.rounds[0].elapsedMs;
  const factory = await replayProviderFactory("u2c", models, trace.header);
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
      for (const r of results) {
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
      cases.push({ trace: file.split("/").pop()!, bandwidth: bw, start, rows });
    }
  }
}

const ratio = (c: Case, p: string, base: string, k: "total_ms" | "downtime_ms" | "bytes") =>
  c.rows[p][k] / c.rows[base][k];
/** A case where pre-copy cannot pay off: plain stop-and-copy has no more downtime than P.Haul. */
const nonConverging = (c: Case) => c.rows["stop-and-copy"].downtime_ms <= c.rows.phaul.downtime_ms;
const summary: Record<string, Record<string, number>> = {};
for (const p of [...POLICIES, "u2c-budget"]) {
  summary[p] = {
    total_vs_phaul: median(cases.map((c) => ratio(c, p, "phaul", "total_ms"))),
    downtime_vs_phaul: median(cases.map((c) => ratio(c, p, "phaul", "downtime_ms"))),
    bytes_vs_phaul: median(cases.map((c) => ratio(c, p, "phaul", "bytes"))),
    total_vs_oracle: median(cases.map((c) => ratio(c, p, "oracle", "total_ms"))),
    downtime_vs_oracle: median(cases.map((c) => ratio(c, p, "oracle", "downtime_ms"))),
    max_downtime_vs_phaul: Math.max(...cases.map((c) => ratio(c, p, "phaul", "downtime_ms"))),
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
};
console.log(JSON.stringify({
  bench: "policies",
  cases: cases.length,
  non_converging_cases: nc.length,
  non_converging_u2c_downtime_vs_phaul: median(
    nc.map((c) => ratio(c, "u2c", "phaul", "downtime_ms")),
  ),
  seconds: Math.round((performance.now() - t0) / 100) / 10,
  summary,
  goals,
  results: cases,
}));
