import { readTraceFile } from "/work/main/src/trace/mod.ts";
import { compare, CRIU_COSTS } from "/work/main/src/sim/mod.ts";
import { providerFactory } from "/work/main/src/cli/simulate.ts";
const t = await readTraceFile(Deno.args[0]);
const f = await providerFactory((Deno.args[1] ?? "u2c") as "u2c", "models", t);
const res = await compare([{name:"x", trace:t}], ["phaul","u2c","oracle"], {...CRIU_COSTS, bandwidthBps: 125e6, rttMs: 1}, f);
for (const r of res.results) console.log(r.policy, r.total_ms, r.downtime_ms, r.round_log.map(x=>`${x.pagesSent}/${x.pagesDeferred}/${x.pagesDirtied}/${Math.round(x.durationMs)}`).join(" "));
