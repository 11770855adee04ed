/**
 * Benchmark of page-batch compression over the authenticated channel. The page set is the real
 * memory of a redis-server holding 100k keys (its resident private pages, read from
 * /proc/PID/mem), repeated up to `--mib` (default 256); each 1 MiB batch is compressed on its own,
 * so the repetition adds nothing LZ4 can exploit. The same set is sent with `--compress` off, on
 * and auto to a `u2cm agent` child process, on loopback and (as root) between two network
 * namespaces joined by a veth pair shaped with tbf at 100 Mbit. Random pages (the worst case) are
 * sent with off and auto on loopback. Prints one JSON object: time, bytes on the wire and MB/s of
 * page data per run, and the ratios against `off` in the same run.
 *
 * Usage: `deno run -A build/bench/compress.ts [--mib 256] [--no-netns]`
 *
 * @module
 */
import { connectPeer } from "../../src/peer/mod.ts";
import type { CompressMode } from "../../src/peer/compression.ts";
import { initIdentity } from "../../src/peer/identity.ts";
import { addPeer } from "../../src/peer/peers.ts";
import { spawnAgent } from "../../tests/peer/support/agent_process.ts";
import { createNetnsPair, netnsUnavailable } from "../../tests/support/netns.ts";

const PAGE = 4096;
const BATCH = 256; // pages per sendPages call (one frame)
const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const arg = (name: string) => {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1] : undefined;
};

if (Deno.args[0] === "--send") {
  const [, stateDir, file, mode, id] = Deno.args;
  console.log(JSON.stringify(await sendRun(stateDir, Deno.readFileSync(file), mode as never, id)));
} else await main();

async function main(): Promise<void> {
  const mib = Number(arg("--mib") ?? 256);
  const root = Deno.makeTempDirSync({ prefix: "u2cm-bench-compress-" });
  const a = `${root}/a`, b = `${root}/b`;
  const ia = await initIdentity(a);
  const ib = await initIdentity(b);
  addPeer(b, { name: "a", address: "127.0.0.1:1", publicKey: ia.publicKey });
  const pin = (address: string) =>
    addPeer(a, {
      name: "b",
      address,
      publicKey: ib.publicKey,
      certFingerprint: ib.certFingerprint,
    }, true);
  try {
    const dump = await redisDump();
    const redis = tile(dump.pages, mib);
    const random = randomPages(mib);
    const out: Record<string, unknown> = {
      bench: "compress",
      mib,
      redis: { keys: dump.keys, resident_mib: round1(dump.pages.length / 2 ** 20) },
    };
    // Loopback: the agent as a child process, the source here.
    const agent = await spawnAgent(["--listen", "127.0.0.1:0", "--state-dir", b]);
    try {
      pin(`127.0.0.1:${agent.port}`);
      await sendRun(a, redis.subarray(0, 8 << 20), "off", "warm");
      const loop: Record<string, unknown> = {};
      for (const mode of ["off", "on", "auto"] as const) {
        loop[`redis_${mode}`] = await sendRun(a, redis, mode, `lo-redis-${mode}`);
      }
      for (const mode of ["off", "auto"] as const) {
        loop[`random_${mode}`] = await sendRun(a, random, mode, `lo-random-${mode}`);
      }
      out.loopback = withRatios(loop);
    } finally {
      await agent.stop();
    }
    const why = Deno.args.includes("--no-netns") ? "--no-netns" : netnsUnavailable();
    out.netns_100mbit = why ? { skipped: why } : await shapedRuns(a, b, redis, pin);
    console.log(JSON.stringify(out));
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
}

interface RunFigures {
  ms: number;
  wire_mib: number;
  page_mb_s: number;
  packed_frames: number;
  raw_frames: number;
  lz4_mb_s: number;
  link_mb_s: number;
  active_at_end: boolean;
}

/** Send `pages` once on a fresh migration with `mode`; wait until all is stored. */
async function sendRun(
  stateDir: string,
  pages: Uint8Array,
  mode: CompressMode,
  id: string,
): Promise<RunFigures> {
  const client = await connectPeer({ stateDir, peer: "b" });
  try {
    const ch = await client.openMigration(id, pages.length, { compress: mode });
    const n = pages.length / PAGE;
    const started = performance.now();
    for (let at = 0; at < n; at += BATCH) {
      const end = Math.min(n, at + BATCH);
      await ch.sendPages({
        pid: 4242,
        addresses: Array.from({ length: end - at }, (_, i) => 0x7f00_0000_0000 + (at + i) * PAGE),
        data: pages.subarray(at * PAGE, end * PAGE),
      });
    }
    await ch.flush();
    const ms = performance.now() - started;
    const s = ch.compression;
    await ch.abort("benchmark run done");
    return {
      ms: Math.round(ms),
      wire_mib: round1(ch.bytesSent / 2 ** 20),
      page_mb_s: Math.round(pages.length / 1e6 / (ms / 1000)),
      packed_frames: s.packedFrames,
      raw_frames: s.rawFrames,
      lz4_mb_s: Math.round(s.compressBps / 1e6),
      link_mb_s: Math.round(s.linkBps / 1e6),
      active_at_end: s.active,
    };
  } finally {
    await client.close();
  }
}

/** The source in namespace A, the agent in B, tbf 100 Mbit both ways. */
async function shapedRuns(
  a: string,
  b: string,
  pages: Uint8Array,
  pin: (address: string) => void,
): Promise<Record<string, unknown>> {
  const net = await createNetnsPair("c");
  const file = `${a}/pages.bin`;
  Deno.writeFileSync(file, pages);
  try {
    await net.shape("100mbit");
    const agent = await spawnAgent(["--listen", `${net.addrB}:7070`, "--state-dir", b], {
      cmd: [...net.exec(net.nsB), Deno.execPath(), "run", "-A", MAIN, "agent"],
    });
    try {
      pin(`${net.addrB}:7070`);
      const runs: Record<string, unknown> = {};
      for (const mode of ["off", "on", "auto"] as const) {
        const r = await new Deno.Command(net.exec(net.nsA)[0], {
          args: [
            ...net.exec(net.nsA).slice(1),
            Deno.execPath(),
            "run",
            "-A",
            new URL(import.meta.url).pathname,
            "--send",
            a,
            file,
            mode,
            `ns-redis-${mode}`,
          ],
          stdout: "piped",
          stderr: "inherit",
          stdin: "null",
        }).output();
        const text = new TextDecoder().decode(r.stdout).trim().split("\n").pop() ?? "";
        runs[`redis_${mode}`] = r.success ? JSON.parse(text) : { failed: r.code };
      }
      return withRatios(runs);
    } finally {
      await agent.stop();
    }
  } finally {
    await net.destroy();
  }
}

/** Add time and wire ratios of each run against the `off` run of the same page set. */
function withRatios(runs: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...runs };
  for (const [key, value] of Object.entries(runs)) {
    const base = runs[key.replace(/_(on|auto)$/, "_off")] as RunFigures | undefined;
    const r = value as RunFigures;
    if (!base || key.endsWith("_off") || !("ms" in r) || !("ms" in base)) continue;
    out[`${key}_vs_off`] = {
      time: Math.round(r.ms / base.ms * 1000) / 1000,
      wire: Math.round(r.wire_mib / base.wire_mib * 1000) / 1000,
    };
  }
  return out;
}

/** Resident private pages of a redis-server holding 100k keys of session-like values. */
async function redisDump(): Promise<{ keys: number; pages: Uint8Array }> {
  const keys = 100_000;
  const dir = Deno.makeTempDirSync({ prefix: "u2cm-bench-redis-" });
  const port = 17379 + Math.floor(Math.random() * 1000);
  const server = new Deno.Command("redis-server", {
    args: ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    cwd: dir,
    stdout: "null",
    stderr: "null",
    stdin: "null",
  }).spawn();
  try {
    for (let i = 0; i < 100; i++) {
      const ping = await new Deno.Command("redis-cli", {
        args: ["-p", String(port), "ping"],
        stdout: "piped",
        stderr: "null",
      }).output();
      if (new TextDecoder().decode(ping.stdout).includes("PONG")) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const cli = new Deno.Command("redis-cli", {
      args: ["-p", String(port), "--pipe"],
      stdin: "piped",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const w = cli.stdin.getWriter();
    const enc = new TextEncoder();
    let x = 2463534242;
    const rnd = () => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return x >>> 0;
    };
    const cities = ["Berlin", "Lyon", "Porto", "Oslo", "Turin", "Gdansk", "Ghent", "Brno"];
    let chunk = "";
    for (let k = 0; k < keys; k++) {
      const key = `session:${k}`;
      const value = JSON.stringify({
        user: `u${rnd() % 1_000_000}`,
        email: `user${rnd() % 100000}@example.org`,
        city: cities[rnd() % cities.length],
        cart: Array.from({ length: rnd() % 4 }, () => ({ sku: rnd() % 99999, qty: rnd() % 5 })),
        seen: 1_764_000_000 + (rnd() % 1_000_000),
        token: (rnd().toString(16) + rnd().toString(16)).padStart(16, "0"),
      });
      chunk += `*3\r\n$3\r\nSET\r\n$${key.length}\r\n${key}\r\n$${
        enc.encode(value).length
      }\r\n${value}\r\n`;
      if (chunk.length > 1 << 16) {
        await w.write(enc.encode(chunk));
        chunk = "";
      }
    }
    await w.write(enc.encode(chunk));
    await w.close();
    await cli.status;
    return { keys, pages: residentPages(server.pid) };
  } finally {
    server.kill("SIGTERM");
    await server.status;
    Deno.removeSync(dir, { recursive: true });
  }
}

/** The resident pages of a process's private writable mappings, concatenated. */
function residentPages(pid: number): Uint8Array {
  const chunks: Uint8Array[] = [];
  const mem = Deno.openSync(`/proc/${pid}/mem`);
  const pagemap = Deno.openSync(`/proc/${pid}/pagemap`);
  const entries = new Uint8Array(256 * 8);
  const view = new DataView(entries.buffer);
  try {
    for (const line of Deno.readTextFileSync(`/proc/${pid}/maps`).split("\n")) {
      const m = /^([0-9a-f]+)-([0-9a-f]+) rw-p/.exec(line);
      if (!m) continue;
      const start = parseInt(m[1], 16), end = parseInt(m[2], 16);
      for (let a = start; a < end; a += 256 * PAGE) {
        const n = Math.min(256, (end - a) / PAGE);
        pagemap.seekSync(a / PAGE * 8, Deno.SeekMode.Start);
        if ((pagemap.readSync(entries.subarray(0, n * 8)) ?? 0) !== n * 8) continue;
        for (let i = 0; i < n; i++) {
          if ((view.getBigUint64(i * 8, true) >> 63n) === 0n) continue;
          const page = new Uint8Array(PAGE);
          mem.seekSync(a + i * PAGE, Deno.SeekMode.Start);
          if ((mem.readSync(page) ?? 0) === PAGE) chunks.push(page);
        }
      }
    }
  } finally {
    mem.close();
    pagemap.close();
  }
  const out = new Uint8Array(chunks.length * PAGE);
  chunks.forEach((c, i) => out.set(c, i * PAGE));
  return out;
}

function tile(pages: Uint8Array, mib: number): Uint8Array {
  const out = new Uint8Array(mib * 2 ** 20);
  for (let at = 0; at < out.length; at += pages.length) {
    out.set(pages.subarray(0, Math.min(pages.length, out.length - at)), at);
  }
  return out;
}

function randomPages(mib: number): Uint8Array {
  const out = new Uint8Array(mib * 2 ** 20);
  const words = new Uint32Array(out.buffer);
  let x = 88172645;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x;
  }
  return out;
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}
