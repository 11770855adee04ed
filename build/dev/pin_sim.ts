/**
 * Development aid: the numbers `tests/sim/pinned_test.ts` pins. Replays a few corpus cases through
 * the policies and prints, per case and policy, total/downtime/bytes/rounds as JSON.
 *
 * Usage: deno run -A build/dev/pin_sim.ts [predictor]
 *
 * @module
 */
import { replayProviderFactory } from "../../src/predict/mod.ts";
import { compare, CRIU_COSTS, type SimConfig } from "../../src/sim/mod.ts";
import { readTraceFile } from "../../src/trace/mod.ts";

/** The pinned cases: trace, link, start fraction, engine. */
export const PINNED_CASES: [string, number, number, "predump" | "delta"][] = [
  ["numpy-cg-a", 125e6, 0.1, "predump"],
  ["torch-b", 1.25e9, 0.7, "predump"],
  ["stress-vm-b", 12.5e6, 0.4, "delta"],
  ["xz-a", 125e6, 0.4, "predump"],
];
const POLICIES = ["phaul", "lxd", "qemu", "stop-and-copy", "post-copy", "fixed-3", "u2c", "oracle"];

const predictor = (Deno.args[0] ?? "window") as "window";
const out: Record<string, unknown> = {};
for (const [name, bps, start, engine] of PINNED_CASES) {
  const trace = await readTraceFile(`models/corpus/${name}.u2ct.gz`);
  const duration = trace.rounds.at(-1)!.elapsedMs - trace.rounds[0].elapsedMs;
  const config: SimConfig = {
    ...CRIU_COSTS,
    bandwidthBps: bps,
    rttMs: 1,
    startMs: start * duration,
    engine,
  };
  const factory = await replayProviderFactory(predictor, "models", trace.header);
  const t0 = performance.now();
  const { results } = await compare([{ name, trace }], POLICIES, config, factory);
  const key = `${name}@${bps}@${start}@${engine}`;
  out[key] = Object.fromEntries(
    results.map((r) => [r.policy, [r.total_ms, r.downtime_ms, r.bytes, r.rounds]]),
  );
  console.error(key, ((performance.now() - t0) / 1000).toFixed(1), "s");
}
console.log(JSON.stringify(out, null, 1));
