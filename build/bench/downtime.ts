/**
 * Downtime benchmark (prints one JSON object): does the freeze grow with memory? One write-heavy
 * memcheck with a FIXED hot set (24 MiB, rewritten in full every ~0.15 s) in 256 MiB, 1 GiB and
 * 2 GiB, migrated between two `u2cm agent`s on loopback and over tbf-shaped netns links, with
 *  - stop-and-copy (no pre-copy, the full-dump freeze), delta+phaul and u2c (the default engine
 *    with the default freeze, scan-and-copy where a lazy dump works), u2c-dump-freeze (u2c with
 *    the full-dump fallback: `U2CM_FREEZE=dump`), post-copy, u2c-no-kdat-cache (u2c with CRIU
 *    probing the kernel at each start: u2cm's kerndat cache removed for the case);
 *  - the floor reference: plain CRIU dump to tmpfs + restore of the same tree on this host
 *    (CRIU loading its kerndat cache, as u2cm's own CRIU starts do: `criu_kerndat_cache`), and,
 *    when a post-copy case runs, CRIU's non-memory floor (`floor_lazy`: lazy dump + lazy restore,
 *    downtime_floor.ts), post-copy's reference (`downtime_vs_nonmem_criu_floor`, goal ≤ 1.2).
 * Sizes under 4× the hot set are small trees (memcheck writing 64 pages a tick); compare them
 * with the floor (`downtime_vs_criu_floor`; goal ≤ 1.5); `downtime_vs_probing_criu_floor` compares
 * them with plain CRIU that probes the kernel at each start (no kerndat cache, as CRIU runs on a
 * host whose /run is not tmpfs unless u2cm made the cache).
 * Reported: downtime and total per case, downtime as a ratio of stop-and-copy's and of the 256 MiB
 * downtime, the phases the result breaks the freeze into, and the CRIU floor.
 * Goals (issue 13): at 1 Gbit/s u2c downtime ≤ 0.15× stop-and-copy and total ≤ 0.8× delta+phaul;
 * 1 GiB and 2 GiB u2c downtime ≤ 1.5× the 256 MiB one.
 *
 * Post-copy rows add the drain (pages fetched after the resume, `post_copy.drain_ms`) as a ratio
 * of stop-and-copy's total and, with the opt-in `post-copy-no-read-ahead` (post-copy against an
 * agent started with U2CM_LAZY_READ_AHEAD=0: every page request goes to the source, as before the
 * relay's read-ahead; minutes per 256 MiB), of that one's drain. The opt-in `u2c-ts-page-server`
 * is u2c against an agent started with U2CM_LOCAL_PAGE_SERVER=ts (the lazy local restore's fill
 * served by the TypeScript page server instead of the native one): compare `local_lazy.fill_ms`.
 *
 * Env: U2CM_BENCH_SIZES (MiB, default "256,1024,2048"), U2CM_BENCH_LINKS (default "lo,1gbit";
 * "100mbit" too takes minutes per case), U2CM_BENCH_CONFIGS (names, default all but the opt-in
 * ones),
 * U2CM_BENCH_HOT_MIB (24), U2CM_BENCH_REPEAT (runs per case and floor, default 1: with more, each
 * reports its median, the cases taking turns so that a shared machine's load falls on all alike).
 *
 * @module
 */
import { ensureKerndatCache, removeKerndatCache } from "../../src/criu/kerndat.ts";
import { requireCriuBinary, startMemcheck } from "../../tests/criu/support.ts";
import { criuFloor, criuLazyFloor, type Floor } from "./downtime_floor.ts";
import { makeNodes, u2cm } from "../../tests/engine/support/agents.ts";
import { runningCopies } from "../../tests/engine/support/memcheck_pids.ts";
import { linkedNamespaces } from "../../tests/support/netns.ts";

const SIZES = list("U2CM_BENCH_SIZES", "256,1024,2048").map(Number);
const LINKS = list("U2CM_BENCH_LINKS", "lo,1gbit");
const HOT_MIB = Number(Deno.env.get("U2CM_BENCH_HOT_MIB") ?? 24);
const REPEAT = Math.max(1, Number(Deno.env.get("U2CM_BENCH_REPEAT") ?? 1));
/** Sizes below 4× the hot set are "small trees": memcheck's default light writing. */
const isSmall = (mib: number) => mib < 4 * HOT_MIB;
/** The size the other sizes' downtimes are compared with (the first with the hot set). */
const BASE_SIZE = SIZES.find((m) => !isSmall(m)) ?? SIZES[0];
const workload = (mib: number) =>
  isSmall(mib) ? ["--mib", String(mib), "--write-pages", "64"] : [
    ...["--mib", String(mib), "--hot-mib", String(HOT_MIB)],
    ...["--write-pages", "1000", "--interval-ms", "20"],
  ];

/** One way to migrate. */
interface Config {
  name: string;
  args: string[];
  /** Environment of the migrating `u2cm` (U2CM_FREEZE picks the freeze path). */
  env?: Record<string, string>;
  /** CRIU probes the kernel at each start of this case (u2cm's kerndat cache removed for it). */
  probing?: boolean;
  /** Environment of the destination agent (it is restarted with it for this case). */
  agentEnv?: Record<string, string>;
  /** Run only when U2CM_BENCH_CONFIGS names it. */
  optIn?: boolean;
}

const ALL_CONFIGS: Config[] = [
  // Plain stop-and-copy: a full CRIU dump, every page sent, a full restore.
  {
    name: "stop-and-copy",
    args: ["--engine", "delta", "--policy", "stop-and-copy"],
    env: { U2CM_FREEZE: "dump" },
  },
  { name: "delta+phaul", args: ["--engine", "delta", "--policy", "phaul"] },
  { name: "u2c", args: ["--policy", "u2c"] },
  // u2c with the freeze of before issue 13 (full dump, re-read, rebuild, eager restore).
  { name: "u2c-dump-freeze", args: ["--policy", "u2c"], env: { U2CM_FREEZE: "dump" } },
  { name: "post-copy", args: ["--policy", "post-copy"] },
  // u2c with CRIU probing the kernel at each start (no kerndat cache: how u2cm ran before it).
  {
    name: "u2c-no-kdat-cache",
    args: ["--policy", "u2c"],
    env: { U2CM_KDAT_CACHE: "off" },
    probing: true,
  },
  // u2c with the lazy local restore's TypeScript page server (the reference of the native one's
  // fill: local_lazy.fill_ms).
  {
    name: "u2c-ts-page-server",
    args: ["--policy", "u2c"],
    agentEnv: { U2CM_LOCAL_PAGE_SERVER: "ts" },
    optIn: true,
  },
  // Post-copy as before the relay's read-ahead (the reference of the drain's speed-up).
  {
    name: "post-copy-no-read-ahead",
    args: ["--policy", "post-copy"],
    agentEnv: { U2CM_LAZY_READ_AHEAD: "0" },
    optIn: true,
  },
];
const CONFIGS = ALL_CONFIGS.filter((c) => {
  const only = Deno.env.get("U2CM_BENCH_CONFIGS");
  return only ? only.split(",").includes(c.name) : !c.optIn;
});
/** A post-copy case runs: measure CRIU's non-memory floor too. */
const POST_COPY = CONFIGS.some((c) => c.name.startsWith("post-copy"));

/** What one migration reported. */
interface Sample {
  ok: boolean;
  total_ms: number;
  downtime_ms: number;
  bytes_sent: number;
  precopy_rounds: number;
  phases: Record<string, number>;
  /** Pages checked against the source's manifest, and what was verified how. */
  verified_pages: number;
  verification: unknown;
  /** Post-copy only: what was fetched after the resume, and how it was checked. */
  post_copy?: unknown;
  /** With U2CM_BENCH_REPEAT: every run's downtime (the sample is the median one). */
  downtime_runs_ms?: number[];
  /** With U2CM_BENCH_REPEAT: every run's total, and its lazy local restore's fill (`fill_ms`). */
  total_runs_ms?: number[];
  fill_runs_ms?: (number | null)[];
  /** A verified lazy local restore: the pages placed after the resume, and the fill's time. */
  local_lazy?: unknown;
}

requireCriuBinary();
// The floor and u2cm start the same CRIU: both load its kernel probe from the cache u2cm's
// agent and migrate make where CRIU cannot keep one itself (src/criu/kerndat.ts).
const kdat = await ensureKerndatCache();
const out = {
  name: "downtime",
  criu_kerndat_cache: kdat,
  workload: { program: "memcheck", args: workload(0).slice(2).join(" "), hot_mib: HOT_MIB },
  floor: {} as Record<string, Floor>,
  /** The floor with CRIU probing the kernel at each start (no kerndat cache), when it has one. */
  floor_no_kdat_cache: {} as Record<string, Floor>,
  /**
   * CRIU's non-memory floor (lazy dump until its page server is up + lazy restore until the tree
   * is up: downtime_floor.ts), measured when a post-copy case runs: post-copy's reference.
   */
  floor_lazy: {} as Record<string, Floor>,
  links: {} as Record<string, unknown>,
};
for (const mib of SIZES) {
  const probing: Floor[] = [], cached: Floor[] = [], lazy: Floor[] = [];
  for (let i = 0; i < REPEAT; i++) {
    if (kdat === "made" || kdat === "cached") {
      await removeKerndatCache();
      probing.push(await criuFloor(workload(mib), `${mib} MiB`));
      await ensureKerndatCache();
    }
    cached.push(await criuFloor(workload(mib), `${mib} MiB`));
    if (POST_COPY) lazy.push(await criuLazyFloor(workload(mib), `${mib} MiB`));
  }
  if (probing.length) out.floor_no_kdat_cache[mib] = medianBy(probing, floorMs);
  out.floor[mib] = medianBy(cached, floorMs);
  if (lazy.length) out.floor_lazy[mib] = medianBy(lazy, floorMs);
}

let subnet = 70;
for (const link of LINKS) {
  const net = link === "lo" ? undefined : linkedNamespaces(`d${subnet}`, link, subnet++);
  const nodes = await makeNodes();
  const startAgent = (env: Record<string, string> = {}) =>
    nodes.startB(0, net?.enter("b") ?? [], net?.ipB ?? "127.0.0.1", env);
  let agent = await startAgent();
  const bySize: Record<string, Record<string, Sample | { failed: string }>> = {};
  try {
    for (const mib of SIZES) {
      const rows: Record<string, Sample | { failed: string }> = bySize[mib] = {};
      const runs = new Map<string, (Sample | { failed: string })[]>();
      // With U2CM_BENCH_REPEAT, the cases take turns (each sees the same load) and each reports
      // its median-downtime run, with every run's downtime.
      for (let i = 0; i < REPEAT; i++) {
        for (const c of CONFIGS) {
          if (c.probing) await removeKerndatCache();
          if (c.agentEnv) {
            await agent.stop();
            agent = await startAgent(c.agentEnv);
          }
          try {
            const got = await once(mib, c, net?.enter("a") ?? [], net?.ipA, nodes.a);
            runs.set(c.name, [...runs.get(c.name) ?? [], got]);
          } finally {
            if (c.probing && (kdat === "made" || kdat === "cached")) await ensureKerndatCache();
            if (c.agentEnv) {
              await agent.stop();
              agent = await startAgent();
            }
          }
        }
      }
      for (const [name, all] of runs) {
        const ok = all.filter((r): r is Sample => "downtime_ms" in r);
        rows[name] = ok.length === 0 ? all[0] : REPEAT === 1 ? ok[0] : {
          ...medianBy(ok, (r) => r.downtime_ms),
          downtime_runs_ms: ok.map((r) => r.downtime_ms),
          ...(ok.some((r) => r.local_lazy) ? { fill_runs_ms: ok.map(fillMs) } : {}),
          total_runs_ms: ok.map((r) => r.total_ms),
        };
      }
    }
  } finally {
    await agent.stop();
    nodes.cleanup();
    net?.cleanup();
  }
  out.links[link] = { results: bySize, ratios: ratios(bySize) };
}
console.log(JSON.stringify(out));

/** Downtime ratios: vs stop-and-copy of the same size, vs the same config at the first size. */
function ratios(bySize: Record<string, Record<string, Sample | { failed: string }>>) {
  const dt = (mib: number, name: string) => {
    const s = bySize[mib]?.[name];
    return s && "downtime_ms" in s ? s : undefined;
  };
  const r: Record<string, Record<string, number | null>> = {};
  for (const mib of SIZES) {
    for (const c of CONFIGS) {
      const s = dt(mib, c.name), plain = dt(mib, "stop-and-copy"), phaul = dt(mib, "delta+phaul");
      const first = dt(SIZES[0], c.name), floor = out.floor[mib];
      const probing = out.floor_no_kdat_cache[mib];
      const lazyFloor = out.floor_lazy[mib];
      const drain = (x?: Sample) => (x?.post_copy as { drain_ms?: number } | undefined)?.drain_ms;
      const oldDrain = drain(dt(mib, "post-copy-no-read-ahead"));
      const base = isSmall(mib) ? undefined : dt(BASE_SIZE, c.name);
      r[`${mib}/${c.name}`] = {
        downtime_vs_stop_and_copy: s && plain ? round2(s.downtime_ms / plain.downtime_ms) : null,
        total_vs_phaul: s && phaul ? round2(s.total_ms / phaul.total_ms) : null,
        downtime_vs_smallest_size: s && first ? round2(s.downtime_ms / first.downtime_ms) : null,
        downtime_vs_base_size: s && base ? round2(s.downtime_ms / base.downtime_ms) : null,
        downtime_vs_criu_floor: s
          ? round2(s.downtime_ms / (floor.dump_ms + floor.restore_ms))
          : null,
        downtime_vs_probing_criu_floor: s && probing
          ? round2(s.downtime_ms / (probing.dump_ms + probing.restore_ms))
          : null,
        ...(lazyFloor && c.name.startsWith("post-copy")
          ? {
            downtime_vs_nonmem_criu_floor: s
              ? round2(s.downtime_ms / (lazyFloor.dump_ms + lazyFloor.restore_ms))
              : null,
          }
          : {}),
        ...(drain(s) !== undefined
          ? {
            drain_vs_stop_and_copy_total: plain ? round2(drain(s)! / plain.total_ms) : null,
            drain_vs_no_read_ahead: oldDrain ? round2(drain(s)! / oldDrain) : null,
          }
          : {}),
      };
    }
  }
  return r;
}

async function once(
  mib: number,
  c: Config,
  prefix: string[],
  ipA: string | undefined,
  stateDir: string,
): Promise<Sample | { failed: string }> {
  const w = await startMemcheck(workload(mib), prefix);
  try {
    await w.waitFor(/^tick 20 /, 60_000);
    const r = await u2cm(
      [
        ...["migrate", "--pid", String(w.pid), "--to", "b", ...c.args],
        ...(ipA ? ["--page-server-address", ipA] : []),
        ...["--format", "json", "--state-dir", stateDir],
      ],
      c.env ?? {},
      prefix,
    );
    if (r.code !== 0) {
      console.error(`${mib} MiB ${c.name}: exit ${r.code}: ${r.stderr.trim()}`);
      return { failed: `exit ${r.code}: ${r.stderr.trim().split("\n").at(-1)}` };
    }
    const res = JSON.parse(r.stdout) as Sample & { ok: boolean };
    console.error(
      `${mib} MiB ${c.name}: total ${res.total_ms} ms, downtime ${res.downtime_ms} ms, ` +
        `${res.precopy_rounds} rounds, ${(res.bytes_sent / 2 ** 20).toFixed(0)} MiB`,
    );
    const { ok, total_ms, downtime_ms, bytes_sent, precopy_rounds, phases } = res;
    const { verified_pages, verification, post_copy, local_lazy } = res;
    return {
      ok,
      total_ms,
      downtime_ms,
      bytes_sent,
      precopy_rounds,
      phases,
      verified_pages,
      verification,
      ...(post_copy ? { post_copy } : {}),
      ...(local_lazy ? { local_lazy } : {}),
    };
  } finally {
    for (const pid of runningCopies(w.out)) Deno.kill(pid, "SIGKILL");
    await w.stop();
    Deno.removeSync(w.dir, { recursive: true });
  }
}

function list(name: string, fallback: string): string[] {
  return (Deno.env.get(name) ?? fallback).split(",").map((s) => s.trim()).filter((s) => s);
}

function floorMs(f: Floor): number {
  return f.dump_ms + f.restore_ms;
}

/** The middle element of `xs` by `key` (the lower middle for an even count). */
/** A run's `local_lazy.fill_ms` (null without a lazy local restore). */
function fillMs(r: Sample): number | null {
  return (r.local_lazy as { fill_ms?: number } | undefined)?.fill_ms ?? null;
}

function medianBy<T>(xs: T[], key: (x: T) => number): T {
  return [...xs].sort((a, b) => key(a) - key(b))[Math.floor((xs.length - 1) / 2)];
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}
