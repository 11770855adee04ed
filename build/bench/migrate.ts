/**
 * Migration benchmark (prints one JSON object): the same 256 MiB, moderately writing workload
 * (memcheck: 100 pages per 20 ms tick in a 10 % hot set ≈ 20 MB/s of writes) migrated between two
 * `u2cm agent`s in two network namespaces over a tbf-shaped link of 1 Gbit/s and 100 Mbit/s, with
 *  - delta + stop-and-copy (baseline: no pre-copy), delta + phaul, delta + u2c,
 *  - the downtime reducers one at a time on top of delta + u2c: deferral only (throttling off),
 *    the hybrid engine (lazy final), and u2c with an 800 ms downtime budget (throttling allowed);
 *  - the LZ4 page codec's ratio and speed on real memory (memcheck, redis with 100k keys).
 * Total time and downtime are reported as ratios against the baselines of the same run.
 * Goals: delta+u2c downtime ≤ 0.5× stop-and-copy at 1 Gbit/s; total ≤ 0.8× delta+phaul.
 *
 * Env: U2CM_BENCH_MIB (256), U2CM_BENCH_REPS (2 at 1 Gbit/s; 1 at 100 Mbit/s), U2CM_BENCH_LINKS
 * (comma-separated tc rates, default "1gbit,100mbit").
 *
 * @module
 */
import { lz4Compress, lz4Decompress } from "../../src/native/codec.ts";
import { requireCriuBinary, startMemcheck } from "../../tests/criu/support.ts";
import { makeNodes, u2cm } from "../../tests/engine/support/agents.ts";
import { runningCopies } from "../../tests/engine/support/memcheck_pids.ts";
import { linkedNamespaces } from "../../tests/support/netns.ts";

const MIB = Number(Deno.env.get("U2CM_BENCH_MIB") ?? 256);
const LINKS = (Deno.env.get("U2CM_BENCH_LINKS") ?? "1gbit,100mbit").split(",").filter((l) => l);
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
  {
    name: "delta+u2c (budget 800 ms, throttling)",
    engine: "delta",
    policy: "u2c",
    extra: ["--max-downtime", "800"],
  },
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
out.codec = await codecFigures();
console.log(JSON.stringify(out));

/**
 * The LZ4 page codec on real memory: memcheck's pages (pseudo-random: the worst case) and a redis
 * holding 100k keys, compressed in 1 MiB batches. Reported: ratio, compression and
 * decompression MB/s, and what it would make of a 256 MiB transfer at 100 Mbit/s.
 */
async function codecFigures() {
  const measure = (pid: number) => {
    // Only resident pages (what CRIU dumps), gathered into 1 MiB batches.
    const batches: Uint8Array[] = [];
    const mem = Deno.openSync(`/proc/${pid}/mem`);
    const pagemap = Deno.openSync(`/proc/${pid}/pagemap`);
    let batch = new Uint8Array(1 << 20), fill = 0;
    const entries = new Uint8Array(256 * 8);
    for (const line of Deno.readTextFileSync(`/proc/${pid}/maps`).split("\n")) {
      const m = /^([0-9a-f]+)-([0-9a-f]+) rw-p/.exec(line);
      if (!m) continue;
      for (let a = parseInt(m[1], 16); a < parseInt(m[2], 16); a += 256 * 4096) {
        const n = Math.min(256, (parseInt(m[2], 16) - a) / 4096);
        pagemap.seekSync(a / 4096 * 8, Deno.SeekMode.Start);
        if ((pagemap.readSync(entries.subarray(0, n * 8)) ?? 0) !== n * 8) continue;
        const view = new DataView(entries.buffer);
        for (let i = 0; i < n; i++) {
          if ((view.getBigUint64(i * 8, true) >> 63n) === 0n) continue;
          mem.seekSync(a + i * 4096, Deno.SeekMode.Start);
          if ((mem.readSync(batch.subarray(fill, fill + 4096)) ?? 0) !== 4096) continue;
          fill += 4096;
          if (fill === batch.length) {
            batches.push(batch);
            batch = new Uint8Array(1 << 20);
            fill = 0;
          }
        }
      }
    }
    if (fill > 0) batches.push(batch.subarray(0, fill));
    mem.close();
    pagemap.close();
    let raw = 0, packed = 0;
    const t0 = performance.now();
    const out = batches.map((b) => lz4Compress(b).slice());
    const t1 = performance.now();
    out.forEach((p, i) => lz4Decompress(p, batches[i].length));
    const t2 = performance.now();
    for (let i = 0; i < batches.length; i++) {
      raw += batches[i].length;
      packed += out[i].length;
    }
    const ratio = packed / raw;
    return {
      mib: Math.round(raw / 2 ** 20),
      ratio: round2(ratio),
      compress_mb_s: Math.round(raw / 1e6 / ((t1 - t0) / 1000)),
      decompress_mb_s: Math.round(raw / 1e6 / ((t2 - t1) / 1000)),
      transfer_256mib_100mbit_s: {
        raw: round2(256 * 2 ** 20 * 8 / 100e6),
        lz4: round2(
          256 * 2 ** 20 * ratio * 8 / 100e6 +
            256 * 2 ** 20 / 1e6 / (raw / 1e6 / ((t1 - t0) / 1000)),
        ),
      },
    };
  };
  const w = await startMemcheck(["--mib", "64"]);
  const memcheck = measure(w.pid);
  await w.stop();
  Deno.removeSync(w.dir, { recursive: true });
  const dir = Deno.makeTempDirSync({ prefix: "u2cm-bench-redis-" });
  const port = 16379 + Math.floor(Math.random() * 1000);
  const redis = new Deno.Command("redis-server", {
    args: ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    cwd: dir,
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    let pipe = "";
    for (let i = 0; i < 100_000; i++) pipe += `SET key:${i} value-${i}-${"x".repeat(i % 64)}\r\n`;
    for (let i = 0; i < 100; i++) {
      const ping = new Deno.Command("redis-cli", {
        args: ["-p", String(port), "PING"],
        stdout: "piped",
      })
        .outputSync();
      if (new TextDecoder().decode(ping.stdout).includes("PONG")) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const cli = new Deno.Command("redis-cli", {
      args: ["-p", String(port), "--pipe"],
      stdin: "piped",
      stdout: "null",
    }).spawn();
    const wr = cli.stdin.getWriter();
    await wr.write(new TextEncoder().encode(pipe));
    await wr.close();
    await cli.status;
    return { memcheck, redis_100k_keys: measure(redis.pid) };
  } finally {
    redis.kill("SIGKILL");
    await redis.status;
    Deno.removeSync(dir, { recursive: true });
  }
}

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
