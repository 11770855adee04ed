/**
 * Benchmark of the peer channel. Two processes: this one (source) and a child running the agent and
 * a raw ws:// sink (this same script with `--serve`). In the same run it moves the same page set
 * (default 256 MiB) through
 *   1. raw ws:// (Deno's WebSocket client → Deno.serve, no TLS, no auth, no hashing), and
 *   2. the authenticated channel (connectPeer → startAgent: TLS, signed handshake, hashed frames,
 *      page store, acknowledged window),
 * and prints one JSON object: MB/s of each and their ratio (goal ≥ 0.8). As root it also times
 * WebSocket against QUIC moving the same amount between two network namespaces joined by a veth
 * pair shaped with tbf at 100 Mbit and 1 Gbit (`shaped`).
 *
 * Usage: `deno run -A build/bench/peer.ts [--mib 256]`
 *
 * @module
 */
import { connectPeer, createLogger, startAgent } from "../../src/peer/mod.ts";
import { initIdentity } from "../../src/peer/identity.ts";
import { addPeer } from "../../src/peer/peers.ts";
import { createNetnsPair, netnsUnavailable } from "../../tests/peer/support/netns.ts";

const PAGE = 4096;
const BATCH_PAGES = 1024;

if (Deno.args[0] === "--serve") await serve(Deno.args[1], Deno.args[2] ?? "127.0.0.1:0");
else if (Deno.args[0] === "--send") {
  await sendOnce(Deno.args[1], Number(Deno.args[2]), Deno.args[3]);
} else await main();

async function main(): Promise<void> {
  const mibAt = Deno.args.indexOf("--mib");
  const mib = mibAt >= 0 ? Number(Deno.args[mibAt + 1]) : 256;
  const root = Deno.makeTempDirSync({ prefix: "u2cm-bench-peer-" });
  const a = `${root}/a`, b = `${root}/b`;
  const ia = await initIdentity(a);
  const ib = await initIdentity(b);
  addPeer(b, { name: "a", address: "127.0.0.1:1", publicKey: ia.publicKey });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname, "--serve", b],
    stdout: "piped",
    stderr: "inherit",
    stdin: "null",
  }).spawn();
  try {
    const ports = await readPorts(child.stdout);
    addPeer(a, {
      name: "b",
      address: `127.0.0.1:${ports.agent}`,
      publicKey: ib.publicKey,
      certFingerprint: ib.certFingerprint,
    });
    const batches = makeBatches(mib);
    const totalBytes = mib * 2 ** 20;
    // Warm both paths once, then measure raw and authenticated alternately (2 runs each, best).
    await rawRun(ports.raw, batches.slice(0, 4));
    await channelRun(a, batches.slice(0, 4), "warm");
    const raw: number[] = [], auth: number[] = [];
    const cpu = { raw: { self: 0, child: 0 }, auth: { self: 0, child: 0 } };
    for (let i = 0; i < 2; i++) {
      let before = [cpuMs(Deno.pid), cpuMs(child.pid)];
      raw.push(await rawRun(ports.raw, batches));
      cpu.raw.self += cpuMs(Deno.pid) - before[0];
      cpu.raw.child += cpuMs(child.pid) - before[1];
      before = [cpuMs(Deno.pid), cpuMs(child.pid)];
      auth.push(await channelRun(a, batches, `bench-${i}`));
      cpu.auth.self += cpuMs(Deno.pid) - before[0];
      cpu.auth.child += cpuMs(child.pid) - before[1];
    }
    const mbps = (ms: number) => Math.round(totalBytes / 1e6 / (ms / 1000));
    const rawMs = Math.min(...raw), authMs = Math.min(...auth);
    const shaped = await shapedRuns(a, b, ia.publicKey, ib, mib);
    console.log(JSON.stringify({
      bench: "peer",
      bytes: totalBytes,
      raw_ws_ms: Math.round(rawMs),
      raw_ws_mb_s: mbps(rawMs),
      auth_channel_ms: Math.round(authMs),
      auth_channel_mb_s: mbps(authMs),
      ratio: Math.round(rawMs / authMs * 1000) / 1000,
      goal_ratio: 0.8,
      runs: { raw_ms: raw.map(Math.round), auth_ms: auth.map(Math.round) },
      shaped,
      cpu_ms: {
        raw: { source: cpu.raw.self, agent: cpu.raw.child },
        auth: { source: cpu.auth.self, agent: cpu.auth.child },
      },
    }));
  } finally {
    child.kill("SIGTERM");
    await child.status;
    Deno.removeSync(root, { recursive: true });
  }
}

/** CPU time (user + system) of process `pid` so far, in ms. */
function cpuMs(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function makeBatches(mib: number) {
  const pages = mib * 256;
  const out = [];
  for (let first = 0; first < pages; first += BATCH_PAGES) {
    const n = Math.min(BATCH_PAGES, pages - first);
    const data = new Uint8Array(n * PAGE);
    const words = new Uint32Array(data.buffer);
    let x = first + 1;
    for (let i = 0; i < words.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      words[i] = x;
    }
    const addresses = Array.from({ length: n }, (_, i) => 0x7f00_0000_0000 + (first + i) * PAGE);
    out.push({ pid: 4242, addresses, data });
  }
  return out;
}

async function rawRun(port: number, batches: { data: Uint8Array }[]): Promise<number> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
  ws.binaryType = "arraybuffer";
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error("raw ws connect failed"));
  });
  const total = batches.reduce((s, b) => s + b.data.length, 0);
  const done = new Promise<void>((resolve) => {
    ws.onmessage = (e) => {
      if (Number(e.data) >= total) resolve();
    };
  });
  const started = performance.now();
  for (const b of batches) {
    for (let at = 0; at < b.data.length; at += 1 << 20) {
      ws.send(b.data.subarray(at, at + (1 << 20)));
      for (let i = 0; i < 100_000 && ws.bufferedAmount > 16 << 20; i++) {
        await new Promise((r) => setTimeout(r, 1));
      }
    }
  }
  ws.send("done");
  await done;
  const ms = performance.now() - started;
  ws.close();
  return ms;
}

async function channelRun(stateDir: string, batches: ReturnType<typeof makeBatches>, id: string) {
  const client = await connectPeer({ stateDir, peer: "b" });
  const total = batches.reduce((s, b) => s + b.data.length, 0);
  const ch = await client.openMigration(id, total);
  const started = performance.now();
  for (const b of batches) await ch.sendPages(b);
  await ch.flush();
  const ms = performance.now() - started;
  await ch.abort("benchmark done");
  await client.close();
  return ms;
}

async function readPorts(stdout: ReadableStream<Uint8Array>) {
  const reader = stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  for (let i = 0; i < 100; i++) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
    const nl = text.indexOf("\n");
    if (nl >= 0) {
      reader.releaseLock();
      return JSON.parse(text.slice(0, nl)) as { agent: number; raw: number };
    }
  }
  throw new Error("the serving child did not report its ports");
}

/** One migration of `mib` MiB to peer "b" over `transport`; prints {"ms": …}. */
async function sendOnce(stateDir: string, mib: number, transport: string): Promise<void> {
  const batches = makeBatches(mib);
  const client = await connectPeer({ stateDir, peer: "b", transport: transport as "ws" | "quic" });
  const ch = await client.openMigration(`shaped-${transport}-${Date.now()}`, mib * 2 ** 20);
  const started = performance.now();
  for (const b of batches) await ch.sendPages(b);
  await ch.flush();
  const ms = performance.now() - started;
  await ch.abort("benchmark done");
  await client.close();
  console.log(JSON.stringify({ ms }));
}

/** WS vs QUIC time to move `mib` MiB between two network namespaces shaped by tbf (root only). */
async function shapedRuns(
  a: string,
  b: string,
  aKey: string,
  ib: { publicKey: string; certFingerprint: string },
  mib: number,
): Promise<Record<string, unknown>> {
  const why = netnsUnavailable();
  if (why) return { skipped: why };
  const out: Record<string, unknown> = { mib };
  const self = new URL(import.meta.url).pathname;
  for (const rate of ["100mbit", "1gbit"]) {
    const net = await createNetnsPair(`b${Deno.pid % 10000}`);
    try {
      await net.shape(rate);
      addPeer(b, { name: "a", address: `${net.addrA}:1`, publicKey: aKey }, true);
      const server = new Deno.Command("ip", {
        args: [
          "netns",
          "exec",
          net.nsB,
          Deno.execPath(),
          "run",
          "-A",
          self,
          "--serve",
          b,
          `${net.addrB}:7070`,
        ],
        stdout: "piped",
        stderr: "inherit",
        stdin: "null",
      }).spawn();
      try {
        await readPorts(server.stdout);
        addPeer(a, {
          name: "b",
          address: `${net.addrB}:7070`,
          publicKey: ib.publicKey,
          certFingerprint: ib.certFingerprint,
        }, true);
        const row: Record<string, number> = {};
        for (const transport of ["ws", "quic"]) {
          const r = await new Deno.Command("ip", {
            args: [
              "netns",
              "exec",
              net.nsA,
              Deno.execPath(),
              "run",
              "-A",
              self,
              "--send",
              a,
              String(mib),
              transport,
            ],
            stdout: "piped",
            stderr: "inherit",
            stdin: "null",
          }).output();
          const text = new TextDecoder().decode(r.stdout).trim().split("\n").pop() ?? "";
          row[`${transport}_ms`] = r.success ? Math.round(JSON.parse(text).ms) : -1;
        }
        out[rate] = row;
      } finally {
        server.kill("SIGTERM");
        await server.status;
      }
    } finally {
      await net.destroy();
    }
  }
  return out;
}

async function serve(stateDir: string, listen: string): Promise<void> {
  const agent = await startAgent({
    listen,
    stateDir,
    transport: "quic", // QUIC on UDP plus WebSocket on the same TCP port
    memoryLimitBytes: 1024 * 2 ** 20,
    log: createLogger("warn"),
  });
  let received = 0;
  const raw = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.binaryType = "arraybuffer";
    received = 0;
    socket.onmessage = (e) => {
      if (typeof e.data === "string") socket.send(String(received));
      else received += (e.data as ArrayBuffer).byteLength;
    };
    return response;
  });
  console.log(JSON.stringify({ agent: agent.port, raw: raw.addr.port }));
  const stop = Promise.withResolvers<void>();
  Deno.addSignalListener("SIGTERM", () => stop.resolve());
  await stop.promise;
  await agent.close();
  await raw.shutdown();
}
