import assert from "node:assert/strict";
import { createPolicy } from "../../src/policy/mod.ts";
import {
  ALL_POLICIES,
  compare,
  type ComparisonRow,
  oracleSearch,
  parseBandwidth,
  type SimConfig,
  simulate,
  TraceTimeline,
} from "../../src/sim/mod.ts";
import type { Trace } from "../../src/trace/mod.ts";
import { craftTrace, range } from "../support/traces.ts";

const PAGES = 16384; // 64 MiB
const GBIT: SimConfig = { bandwidthBps: 125e6, rttMs: 1, freezeMs: 20, restoreMs: 30 };

/** Seeded pseudo-random pages, so the crafted traces are fixed. */
function scatter(seed: number, count: number, pages: number): number[] {
  let x = seed * 2654435761 >>> 0;
  return Array.from({ length: count }, () => {
    x = (x * 1103515245 + 12345) >>> 0;
    return x % pages;
  });
}

const SCENARIOS: Record<string, Trace> = {
  // A small hot set: pre-copy converges to it.
  converging: craftTrace(PAGES, 120, () => range(0, 64)),
  // A working set rewritten every round: after one round nothing more is gained.
  plateauing: craftTrace(PAGES, 120, (r) => [...range(0, 2048), ...scatter(r, 16, PAGES)]),
  // Everything rewritten every round: pre-copy cannot pay off.
  "non-converging": craftTrace(PAGES, 120, () => range(0, PAGES)),
  // A quiet hot set with a large burst every tenth round.
  bursty: craftTrace(PAGES, 120, (r) => r % 10 === 0 ? range(0, 8192) : range(0, 32)),
};

function byPolicy(rows: ComparisonRow[]): Map<string, ComparisonRow> {
  return new Map(rows.map((r) => [r.policy, r]));
}

Deno.test("bandwidths parse with units and bad ones are refused", () => {
  assert.equal(parseBandwidth("100mbit"), 12.5e6);
  assert.equal(parseBandwidth("1gbit"), 125e6);
  assert.equal(parseBandwidth("125MB/s"), 125e6);
  assert.throws(() => parseBandwidth("fast"), /bad bandwidth "fast"/);
  assert.throws(() => parseBandwidth("0mbit"), RangeError);
});

Deno.test("a small hot set: u2c pre-copies and ends near the hot set's downtime", async () => {
  const rows = byPolicy(
    (await compare([{ name: "c", trace: SCENARIOS.converging }], [
      "u2c",
      "phaul",
      "stop-and-copy",
      "oracle",
    ], GBIT)).results,
  );
  const u2c = rows.get("u2c")!, phaul = rows.get("phaul")!, sc = rows.get("stop-and-copy")!;
  assert.ok(u2c.rounds >= 1, `u2c pre-copied ${u2c.rounds} rounds`);
  const hotSetMs = 64 * 4096 / 125e6 * 1000;
  assert.ok(u2c.downtime_ms <= 20 + 30 + 1 + hotSetMs + 1, `u2c downtime ${u2c.downtime_ms}`);
  assert.ok(u2c.downtime_ms < sc.downtime_ms / 5);
  assert.ok(
    u2c.within_downtime_limit,
    `u2c downtime ${u2c.downtime_ms} over the objective's limit`,
  );
  assert.ok(u2c.total_ms <= phaul.total_ms);
});

Deno.test("a plateau: u2c stops within a few rounds where phaul keeps going", async () => {
  const rows = byPolicy(
    (await compare([{ name: "p", trace: SCENARIOS.plateauing }], [
      "u2c",
      "phaul",
    ], GBIT)).results,
  );
  const u2c = rows.get("u2c")!, phaul = rows.get("phaul")!;
  assert.ok(u2c.rounds < phaul.rounds, `u2c ran ${u2c.rounds} rounds`);
  assert.equal(phaul.rounds, 9, "phaul stops only after the round with index 8");
  assert.ok(u2c.total_ms < phaul.total_ms * 0.95, `${u2c.total_ms} vs ${phaul.total_ms}`);
  assert.ok(u2c.downtime_ms <= phaul.downtime_ms * 1.1, `${u2c.downtime_ms} ${phaul.downtime_ms}`);
});

Deno.test("everything rewritten every round: u2c does not pre-copy at all", async () => {
  const rows = byPolicy(
    (await compare([{ name: "n", trace: SCENARIOS["non-converging"] }], [
      "u2c",
      "phaul",
      "stop-and-copy",
    ], GBIT)).results,
  );
  const u2c = rows.get("u2c")!, phaul = rows.get("phaul")!, sc = rows.get("stop-and-copy")!;
  assert.equal(u2c.rounds, 0);
  assert.equal(u2c.total_ms, sc.total_ms);
  assert.ok(u2c.total_ms < phaul.total_ms);
  assert.ok(u2c.downtime_ms <= phaul.downtime_ms);
});

Deno.test("invariants hold for every policy on every crafted trace", async () => {
  for (const [name, trace] of Object.entries(SCENARIOS)) {
    const tl = new TraceTimeline(trace);
    const oracle = await oracleSearch(tl, GBIT);
    for (const policy of ALL_POLICIES.filter((p) => p !== "oracle")) {
      const r = await simulate(tl, createPolicy(policy), GBIT);
      const what = `${name}/${policy}`;
      const wire = 4096;
      const precopyBytes = r.roundLog.reduce((s, x) => s + x.bytesSent, 0);
      const finalBytes = r.bytes - precopyBytes;
      // Bytes are conserved: every resident page goes at least once, every send is counted.
      assert.ok(r.bytes >= r.residentPages * wire, `${what}: ${r.bytes} bytes`);
      assert.equal(r.bytes % wire, 0, what);
      assert.equal(
        r.pagesResent,
        r.bytes / wire - r.residentPages,
        `${what}: resent = sends - distinct`,
      );
      // Downtime covers at least the final copy at link speed (stop-and-copy).
      if (r.mode === "stop-and-copy") {
        assert.ok(r.downtimeMs + 1e-6 >= finalBytes / GBIT.bandwidthBps * 1000, what);
      }
      assert.ok(r.totalMs + 1e-6 >= r.downtimeMs, what);
      // The oracle is the limit: within the downtime limit, no policy is faster.
      if (r.mode === "stop-and-copy" && r.downtimeMs <= oracle.downtimeLimitMs) {
        assert.ok(oracle.totalMs <= r.totalMs + 1e-6, `${what}: ${r.totalMs} < ${oracle.totalMs}`);
      }
      assert.ok(oracle.downtimeMs <= oracle.downtimeLimitMs + 1e-6);
    }
  }
});

Deno.test("post-copy's downtime is only the fixed costs and it reports remote faults", async () => {
  const r = await simulate(SCENARIOS.converging, createPolicy("post-copy"), GBIT);
  assert.equal(r.mode, "post-copy");
  assert.equal(r.downtimeMs, 20 + 30 + 1);
  assert.ok(r.remoteFaults > 0 && r.remoteFaults <= 64, `${r.remoteFaults} remote faults`);
  assert.ok(r.totalMs > PAGES * 4096 / 125e6 * 1000);
});
