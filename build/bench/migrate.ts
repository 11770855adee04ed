/**
 * Migration benchmark (prints one JSON object): the same 256 MiB, moderately writing workload
 * (memcheck: 100 pages per 20 ms tick in a 10 % hot set ≈ 20 MB/s of writes) migrated between two
 * `u2cm agent`s in two network namespaces over a tbf-shaped link of 1 Gbit/s and 100 Mbit/s, with
 *  - delta + stop-and-copy (baseline: no pre-copy), delta + phaul, delta + u2c,
 *  - the downtime reducers one at a time on top of delta + u2c: deferral only (throttling off),
 *    and the hybrid engine (lazy final), and u2c with a downtime budget (throttling allowed).
 * Total time and downtime are reported as ratios against the baselines of the same run.
 * Goals: delta+u2c downtime ≤ 0.5× stop-and-copy at 1 Gbit/s; total ≤ 0.8× delta+phaul.
 *
 * Env: U2CM_BENCH_MIB (256), U2CM_BENCH_REPS (2 at 1 Gbit/s; 1 at 100 Mbit/s), U2CM_BENCH_LINKS
 * (comma-separated tc rates, default "1gbit,100mbit").
 *
 * @module
 */
import { requireCriuBinary, startMemcheck } from "../../tests/criu/support.ts";
import { makeNodes, u2cm } from "../../tests/engine/support/agents.ts";
import { runningCopies } from "../../tests/engine/support/memcheck_pids.ts";
import { linkedNamespaces } from "../../tests/engine/support/netns.ts";

const MIB = Number(Deno.env.get("U2CM_BENCH_MIB") ?? 256);
const LINKS = (Deno.env.get("U2CM_BENCH_LINKS") ?? "1gbit,100mbit").split(",");
const WORKLOAD = ["--mib", String(MIB), "--write-pages", "100", "--hot-percent", "10"];

interface Config {
  name: string;
  engine: string;
  policy: string;
  extra: string[];
}

const CONFIGS: Config[] = [
  { name: "stop-and-copy", engine: "delta", policy: "stop-and-copy", extra: [] },
  { name: "delta+phaul", engine: "delta", policy: "phaul", extra: [] },
  { name: "delta+u2c", engine: "delta", policy: "u2c", extra: [] },
  { name: "delta+u2c (no throttle)", engine: "delta", policy: "u2c", extra: ["--no-throttle"] },
  { name: "hybrid+u2c", engine: "hybrid", policy: "u2c", extra: [] },
];

interface Sample {
  total_ms: number;
  downtime_ms: number;
  bytes_sent: number;
  precopy_rounds: number;
  phases: Record<string, number>;
}

requireCriuBinary();
const out: Record<string, unknown> = {
  name: "migrate",
  workload: { program: "memcheck", args: WORKLOAD.join(" ") },
  links: {} as Record<string, unknown>,
};
let subnet = 90;
for (const rate of LINKS) {
  const reps = Number(Deno.env.get("U2CM_BENCH_REPS") ?? (rate === "1gbit" ? 2 : 1));
  const net = linkedNamespaces(`b${subnet}`, rate, subnet++);
  const nodes = await makeNodes();
  const agent = await nodes.startB(0, net.enter("b"), net.ipB);
  const rows: Record<string, Sample & { samples: number; failures: number }> = {};
  try {
    for (let rep = 0; rep < reps; rep++) {
      for (const c of CONFIGS) {
        const s = await once(c, net.enter("a"), net.ipA, nodes.a);
        const row = rows[c.name] ??= {
          total_ms: 0,
          downtime_ms: 0,
          bytes_sent: 0,
          precopy_rounds: 0,
          phases: {},
          samples: 0,
          failures: 0,
        };
        if (!s) {
          row.failures++;
          continue;
        }
        row.samples++;
        row.total_ms += s.total_ms;
        row.downtime_ms += s.downtime_ms;
        row.bytes_sent += s.bytes_sent;
        row.precopy_rounds += s.precopy_rounds;
        for (const [k, v] of Object.entries(s.phases)) row.phases[k] = (row.phases[k] ?? 0) + v;
      }
    }
  } finally {
    await agent.stop();
    nodes.cleanup();
    net.cleanup();
  }
  for (const row of Object.values(rows)) {
    const n = Math.max(1, row.samples);
    row.total_ms = Math.round(row.total_ms / n);
    row.downtime_ms = Math.round(row.downtime_ms / n);
    row.bytes_sent = Math.round(row.bytes_sent / n);
    row.precopy_rounds = Math.round(row.precopy_rounds / n * 10) / 10;
    for (const k of Object.keys(row.phases)) row.phases[k] = Math.round(row.phases[k] / n);
  }
  const base = rows["stop-and-copy"], phaul = rows["delta+phaul"];
  const ratios: Record<string, { downtime_vs_stop_and_copy: number; total_vs_phaul: number }> = {};
  for (const [name, row] of Object.entries(rows)) {
    ratios[name] = {
      downtime_vs_stop_and_copy: round2(row.downtime_ms / base.downtime_ms),
      total_vs_phaul: round2(row.total_ms / phaul.total_ms),
    };
  }
  (out.links as Record<string, unknown>)[rate] = {
    reps,
    results: rows,
    ratios,
    goals: {
      u2c_downtime_le_half_stop_and_copy: ratios["delta+u2c"].downtime_vs_stop_and_copy <= 0.5,
      u2c_total_le_0_8_phaul: ratios["delta+u2c"].total_vs_phaul <= 0.8,
    },
  };
}
console.log(JSON.stringify(out));

async function once(c: Config, prefix: string[], ipA: string, stateDir: string) {
  const w = await startMemcheck(WORKLOAD, prefix);
  try {
    await w.waitFor(/^tick 20 /, 30_000);
    const r = await u2cm(
      [
        "migrate",
        "--pid",
        String(w.pid),
        "--to",
        "b",
        "--engine",
        c.engine,
        "--policy",
        c.policy,
        "--page-server-address",
        ipA,
        "--format",
        "json",
        "--state-dir",
        stateDir,
        ...c.extra,
      ],
      {},
      prefix,
    );
    if (r.code !== 0) {
      console.error(`${c.name}: exit ${r.code}: ${r.stderr.trim()}`);
      return undefined;
    }
    const res = JSON.parse(r.stdout);
    console.error(
      `${c.name}: total ${res.total_ms} ms, downtime ${res.downtime_ms} ms, ` +
        `${res.precopy_rounds} rounds, ${(res.bytes_sent / 2 ** 20).toFixed(0)} MiB`,
    );
    return res as Sample;
  } finally {
    for (const pid of runningCopies(w.out)) Deno.kill(pid, "SIGKILL");
    await w.stop();
    Deno.removeSync(w.dir, { recursive: true });
  }
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}
