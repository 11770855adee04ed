/**
 * Development aid: replay one trace through phaul, u2c and the oracle at 1 Gbit (or the bandwidth
 * given) and print every round (sent/deferred/dirtied/ms) with u2c's predicted dirty count.
 *
 * Usage: deno run -A build/dev/sim_rounds.ts TRACE [u2c|window|…] [bandwidth] [start fraction]
 *
 * @module
 */
import { replayProviderFactory } from "../../src/predict/mod.ts";
import { compare, CRIU_COSTS, parseBandwidth } from "../../src/sim/mod.ts";
import { readTraceFile } from "../../src/trace/mod.ts";

const trace = await readTraceFile(Deno.args[0]);
const predictor = (Deno.args[1] ?? "u2c") as "u2c";
const bandwidthBps = parseBandwidth(Deno.args[2] ?? "1gbit");
const factory = await replayProviderFactory(predictor, "models", trace.header);
const duration = trace.rounds.at(-1)!.elapsedMs - trace.rounds[0].elapsedMs;
const startMs = Deno.args[3] === undefined ? undefined : Number(Deno.args[3]) * duration;
const { results } = await compare(
  [{ name: Deno.args[0], trace }],
  ["phaul", "u2c", "oracle"],
  { ...CRIU_COSTS, bandwidthBps, rttMs: 1, startMs },
  factory,
);
for (const r of results) {
  const rounds = r.round_log.map((x) =>
    `${x.pagesSent}/${x.pagesDeferred}/${x.pagesDirtied}/${Math.round(x.durationMs)}` +
    (x.predictedDirty === undefined ? "" : `(p${Math.round(x.predictedDirty)})`)
  );
  console.log(r.policy, r.total_ms, r.downtime_ms, rounds.join(" "));
}
