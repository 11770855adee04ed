/**
 * Benchmark of the peer channel. Two processes: this one (source) and a child running the agent and
 * a raw ws:// sink (this same script with `--serve`). In the same run it moves the same page set
 * (default 256 MiB) through
 *   1. raw ws:// (Deno's WebSocket client → Deno.serve, no TLS, no auth, no hashing), and
 *   2. the authenticated channel (connectPeer → startAgent: TLS, signed handshake, hashed frames,
 *      page store, acknowledged window),
 * alternately, `--runs` times each, and prints one JSON object: MB/s of each, `ratio` (best
 * authenticated against best raw; goal ≥ 0.8), the ratio of every pair of neighbouring runs, and
 * the CPU each side spent. The authenticated run must get the sealed bulk stream (page and file
 * frames as AES-256-GCM records on their own TCP connection). In the same rounds it also times the
 * channel with every frame on the WebSocket (`ws_only_ratio`, the path before the bulk stream),
 * raw ws:// into a sink that keeps what it receives (`keep_ratio`: that against the channel; the
 * page store must keep what arrives) and Deno's own WebSocket over Deno's TLS (wss://, the
 * dropping sink): `deno_wss_ratio` is what TLS alone leaves of raw. Batches carry their page
 * hashes, as the engines' batches do (they hash each page once when they read it).
 *
 * As root it also moves the same amount between two network namespaces joined by a veth pair
 * shaped with tbf (`--rates`, default 100mbit and 1gbit): a plain TCP stream (the line's real
 * goodput), then the authenticated channel over WebSocket and over QUIC. `shaped.<rate>` gives each
 * time and `ws_line_ratio` / `quic_line_ratio`: goodput over the nominal rate (goal ≥ 0.9), and
 * `ws_tcp_ratio` / `quic_tcp_ratio`: against the plain TCP stream.
 *
 * Usage: `deno run -A build/bench/peer.ts [--mib 256] [--runs 3] [--rates 100mbit,1gbit]
 *         [--no-shaped] [--no-loopback]`. `U2CM_BENCH_AGENT_FLAGS` adds Deno flags to the agent
 * child (e.g. `--cpu-prof --cpu-prof-dir=DIR`), `U2CM_BENCH_TRANSPORTS` picks the shaped runs
 * (default `tcp,ws,quic`), `U2CM_BENCH_WINDOW_MIB` their window (default: the client's).
 *
 * @module
 */
import { connectPeer, createLogger, startAgent } from "../../src/peer/mod.ts";
import { initIdentity, loadIdentity } from "../../src/peer/identity.ts";
import { pageHashes } from "../../src/native/page_hash.ts";
import { addPeer } from "../../src/peer/peers.ts";
import { simdMasking } from "../../src/peer/ws_mask.ts";
import { createNetnsPair, netnsUnavailable } from "../../tests/support/netns.ts";

const PAGE = 4096;
const BATCH_PAGES = 1024;

if (Deno.args[0] === "--serve") {
  await serve(Deno.args[1], Deno.args[2] ?? "127.0.0.1:0", Number(Deno.args[3] ?? 2 ** 40));
} else if (Deno.args[0] === "--wss-run") {
  // Deno's WebSocket over Deno's TLS (started with --unsafely-ignore-certificate-errors).
  const batches = makeBatches(Number(Deno.args[2]));
  await rawRun(Number(Deno.args[1]), batches.slice(0, 4), "wss");
  console.log(JSON.stringify({ ms: await rawRun(Number(Deno.args[1]), batches, "wss") }));
} else if (Deno.args[0] === "--send") {
  await sendOnce(Deno.args[1], Number(Deno.args[2]), Deno.args[3], Deno.args[4]);
} else await main();

function flag(name: string, fallback: string): string {
  const at = Deno.args.indexOf(name);
  return at >= 0 ? Deno.args[at + 1] : fallback;
}

async function main(): Promise<void> {
  const mib = Number(flag("--mib", "256"));
  const runs = Number(flag("--runs", "3"));
  const rates = flag("--rates", "100mbit,1gbit").split(",");
  const loopback = !Deno.args.includes("--no-loopback");
  const shapedToo = !Deno.args.includes("--no-shaped");
  const root = Deno.makeTempDirSync({ prefix: "u2cm-bench-peer-" });
  const a = `${root}/a`, b = `${root}/b`;
  const ia = await initIdentity(a);
  const ib = await initIdentity(b);
  addPeer(b, { name: "a", address: "127.0.0.1:1", publicKey: ia.publicKey });
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      ...(Deno.env.get("U2CM_BENCH_AGENT_FLAGS") ?? "").split(" ").filter(Boolean),
      new URL(import.meta.url).pathname,
      "--serve",
      b,
    ],
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
    const totalBytes = mib * 2 ** 20;
    const out: Record<string, unknown> = { bench: "peer", bytes: totalBytes };
    if (loopback) {
      Object.assign(out, await loopbackRuns(a, ports.raw, child.pid, mib, runs, ports.wss));
    }
    if (shapedToo) out.shaped = await shapedRuns(a, b, ia.publicKey, ib, mib, rates);
    console.log(JSON.stringify(out));
  } finally {
    child.kill("SIGTERM");
    await child.status;
    Deno.removeSync(root, { recursive: true });
  }
}

/** Raw ws:// against the authenticated channel on loopback, alternately, `runs` times each. */
async function loopbackRuns(
  stateDir: string,
  rawPort: number,
  agentPid: number,
  mib: number,
  runs: number,
  wssPort?: number,
) {
  const batches = makeBatches(mib);
  const totalBytes = mib * 2 ** 20;
  // Warm both paths once (the first channel also learns the agent's certificate).
  await rawRun(rawPort, batches.slice(0, 4));
  await channelRun(stateDir, batches.slice(0, 4), "warm");
  const raw: number[] = [], auth: number[] = [], wss: number[] = [];
  const wsOnly: number[] = [], rawKeep: number[] = [];
  const zero = () => ({ source: 0, agent: 0 });
  const cpu = { raw: zero(), auth: zero(), wsOnly: zero(), rawKeep: zero(), wssAgent: 0 };
  const timed = async (
    into: number[],
    c: { source: number; agent: number },
    run: () => Promise<number>,
  ) => {
    const before = [cpuMs(Deno.pid), cpuMs(agentPid)];
    into.push(await run());
    c.source += cpuMs(Deno.pid) - before[0];
    c.agent += cpuMs(agentPid) - before[1];
  };
  for (let i = 0; i < runs; i++) {
    await timed(raw, cpu.raw, () => rawRun(rawPort, batches));
    await timed(auth, cpu.auth, () => channelRun(stateDir, batches, `bench-${i}`));
    await timed(wsOnly, cpu.wsOnly, () => channelRun(stateDir, batches, `ws-${i}`, false));
    await timed(rawKeep, cpu.rawKeep, () => rawRun(rawPort, batches, "ws", "/keep"));
    if (wssPort) {
      const before = cpuMs(agentPid);
      wss.push(await wssRun(wssPort, mib));
      cpu.wssAgent += cpuMs(agentPid) - before;
    }
  }
  const mbps = (ms: number) => Math.round(totalBytes / 1e6 / (ms / 1000));
  const rawMs = Math.min(...raw), authMs = Math.min(...auth);
  const r3 = (x: number) => Math.round(x * 1000) / 1000;
  const per = (c: { source: number; agent: number }) => ({
    source: Math.round(c.source / runs),
    agent: Math.round(c.agent / runs),
  });
  return {
    raw_ws_ms: Math.round(rawMs),
    raw_ws_mb_s: mbps(rawMs),
    auth_channel_ms: Math.round(authMs),
    auth_channel_mb_s: mbps(authMs),
    ratio: r3(rawMs / authMs),
    goal_ratio: 0.8,
    pair_ratios: raw.map((r, i) => r3(r / auth[i])),
    // The same channel with every frame on the WebSocket over TLS (bulk: false), as before the
    // sealed bulk stream; and raw ws:// into a sink that keeps what it receives, as a store must.
    ws_only_channel_ms: Math.round(Math.min(...wsOnly)),
    ws_only_ratio: r3(rawMs / Math.min(...wsOnly)),
    raw_ws_keep_ms: Math.round(Math.min(...rawKeep)),
    keep_ratio: r3(Math.min(...rawKeep) / authMs),
    // Deno's own wss:// against ws:// (the same sink, TLS added): what TLS alone leaves.
    deno_wss_ms: wss.length ? Math.round(Math.min(...wss)) : undefined,
    deno_wss_ratio: wss.length ? r3(rawMs / Math.min(...wss)) : undefined,
    runs: {
      raw_ms: raw.map(Math.round),
      auth_ms: auth.map(Math.round),
      ws_only_ms: wsOnly.map(Math.round),
      raw_keep_ms: rawKeep.map(Math.round),
      deno_wss_ms: wss.map(Math.round),
    },
    cpu_ms_per_run: {
      raw: per(cpu.raw),
      auth: per(cpu.auth),
      ws_only: per(cpu.wsOnly),
      raw_keep: per(cpu.rawKeep),
      deno_wss: { agent: Math.round(cpu.wssAgent / runs) },
    },
    simd_masking: simdMasking(),
  };
}

/** One wss:// run in a child that accepts the self-signed certificate; its time in ms. */
async function wssRun(port: number, mib: number): Promise<number> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--unsafely-ignore-certificate-errors=127.0.0.1",
      new URL(import.meta.url).pathname,
      "--wss-run",
      String(port),
      String(mib),
    ],
    stdout: "piped",
    stderr: "null",
  }).output();
  const text = new TextDecoder().decode(r.stdout).trim().split("\n").pop() ?? "";
  return r.success ? JSON.parse(text).ms : Infinity;
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
    out.push({ pid: 4242, addresses, data, hashes: pageHashes(data) });
  }
  return out;
}

async function rawRun(
  port: number,
  batches: { data: Uint8Array }[],
  scheme = "ws",
  path = "/",
): Promise<number> {
  const ws = new WebSocket(`${scheme}://127.0.0.1:${port}${path}`);
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

async function channelRun(
  stateDir: string,
  batches: ReturnType<typeof makeBatches>,
  id: string,
  bulk = true,
) {
  const client = await connectPeer({ stateDir, peer: "b", bulk });
  if (bulk && !client.sealedBulk) throw new Error("the channel did not get its sealed bulk stream");
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
      return JSON.parse(text.slice(0, nl)) as {
        agent: number;
        raw: number;
        wss: number;
        tcp: number;
      };
    }
  }
  throw new Error("the serving child did not report its ports");
}

/**
 * One migration of `mib` MiB to peer "b" over `transport` ("ws" or "quic"), or (transport "tcp")
 * the same bytes as one plain TCP stream to `tcpAddress`; prints {"ms": …}.
 */
async function sendOnce(
  stateDir: string,
  mib: number,
  transport: string,
  tcpAddress?: string,
): Promise<void> {
  const batches = makeBatches(mib);
  if (transport === "tcp") {
    const [hostname, port] = tcpAddress!.split(":");
    const conn = await Deno.connect({ hostname, port: Number(port) });
    const started = performance.now();
    for (const b of batches) {
      for (let o = 0; o < b.data.length;) o += await conn.write(b.data.subarray(o));
    }
    await conn.read(new Uint8Array(1)); // the sink answers once it has every byte
    const ms = performance.now() - started;
    conn.close();
    console.log(JSON.stringify({ ms }));
    return;
  }
  const windowMib = Deno.env.get("U2CM_BENCH_WINDOW_MIB");
  const client = await connectPeer({
    stateDir,
    peer: "b",
    transport: transport as "ws" | "quic",
    ...(windowMib ? { windowBytes: Number(windowMib) * 2 ** 20 } : {}),
  });
  // Warm up (the first link to a peer also learns its certificate), then measure.
  const warm = await client.openMigration(`warm-${transport}-${Date.now()}`, 4 << 20);
  for (const b of batches.slice(0, 4)) await warm.sendPages(b);
  await warm.flush();
  await warm.abort("warm-up done");
  const ch = await client.openMigration(`shaped-${transport}-${Date.now()}`, mib * 2 ** 20);
  const started = performance.now();
  for (const b of batches) await ch.sendPages(b);
  await ch.flush();
  const ms = performance.now() - started;
  await ch.abort("benchmark done");
  await client.close();
  console.log(JSON.stringify({ ms }));
}

/**
 * Plain TCP, then the channel over WebSocket and QUIC, moving `mib` MiB between two network
 * namespaces shaped by tbf at each of `rates` (root only).
 */
async function shapedRuns(
  a: string,
  b: string,
  aKey: string,
  ib: { publicKey: string; certFingerprint: string },
  mib: number,
  rates: string[],
): Promise<Record<string, unknown>> {
  const why = netnsUnavailable();
  if (why) return { skipped: why };
  const out: Record<string, unknown> = { mib };
  const self = new URL(import.meta.url).pathname;
  const bytes = mib * 2 ** 20;
  for (const rate of rates) {
    const net = await createNetnsPair("b");
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
          String(bytes),
        ],
        stdout: "piped",
        stderr: "inherit",
        stdin: "null",
      }).spawn();
      try {
        const ports = await readPorts(server.stdout);
        addPeer(a, {
          name: "b",
          address: `${net.addrB}:7070`,
          publicKey: ib.publicKey,
          certFingerprint: ib.certFingerprint,
        }, true);
        const row: Record<string, number> = {};
        for (
          const transport of (Deno.env.get("U2CM_BENCH_TRANSPORTS") ?? "tcp,ws,quic").split(",")
        ) {
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
              `${net.addrB}:${ports.tcp}`,
            ],
            stdout: "piped",
            stderr: "inherit",
            stdin: "null",
          }).output();
          const text = new TextDecoder().decode(r.stdout).trim().split("\n").pop() ?? "";
          row[`${transport}_ms`] = r.success ? Math.round(JSON.parse(text).ms) : -1;
        }
        const nominal = parseRate(rate);
        const r3 = (x: number) => Math.round(x * 1000) / 1000;
        const goodput = (ms: number) => ms > 0 ? bytes * 8 / (ms / 1000) : 0;
        for (const t of ["tcp", "ws", "quic"]) {
          row[`${t}_mbit_s`] = Math.round(goodput(row[`${t}_ms`]) / 1e6);
          row[`${t}_line_ratio`] = r3(goodput(row[`${t}_ms`]) / nominal);
        }
        row.ws_tcp_ratio = r3(row.tcp_ms / row.ws_ms);
        row.quic_tcp_ratio = r3(row.tcp_ms / row.quic_ms);
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

/** "100mbit" / "1gbit" in bit/s. */
function parseRate(rate: string): number {
  const m = /^(\d+(?:\.\d+)?)(k|m|g)bit$/.exec(rate);
  if (!m) throw new Error(`rate '${rate}' is not like 100mbit or 1gbit`);
  return Number(m[1]) * { k: 1e3, m: 1e6, g: 1e9 }[m[2] as "k" | "m" | "g"];
}

async function serve(stateDir: string, listen: string, tcpBytes: number): Promise<void> {
  const agent = await startAgent({
    listen,
    stateDir,
    transport: "quic", // QUIC on UDP plus WebSocket on the same TCP port
    memoryLimitBytes: 1024 * 2 ** 20,
    log: createLogger("warn"),
  });
  let received = 0;
  // "/keep" keeps every message until the run ends, as the agent's page store keeps pages: on
  // this VM the first touch of fresh memory is a large part of what receiving costs.
  let kept: ArrayBuffer[] = [];
  const sink = (req: Request) => {
    const { socket, response } = Deno.upgradeWebSocket(req);
    const keep = new URL(req.url).pathname === "/keep";
    socket.binaryType = "arraybuffer";
    received = 0;
    kept = [];
    socket.onmessage = (e) => {
      if (typeof e.data === "string") {
        socket.send(String(received));
        kept = [];
      } else {
        received += (e.data as ArrayBuffer).byteLength;
        if (keep) kept.push(e.data as ArrayBuffer);
      }
    };
    return response;
  };
  const raw = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, sink);
  // The same sink behind Deno's own TLS (wss://), with this node's certificate: the reference for
  // what TLS alone costs Deno's WebSocket.
  const identity = await loadIdentity(stateDir);
  const wss = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: identity.certPem,
    key: identity.keyPem,
    onListen: () => {},
  }, sink);
  // A plain TCP sink: answers one byte each time a connection delivered `tcpBytes` bytes.
  const hostname = listen.slice(0, listen.lastIndexOf(":"));
  const tcp = Deno.listen({ hostname, port: 0 });
  (async () => {
    for await (const conn of tcp) {
      (async () => {
        const buf = new Uint8Array(1 << 20);
        try {
          for (let n = 0;;) {
            const r = await conn.read(buf);
            if (r === null) break;
            n += r;
            if (n >= tcpBytes) {
              await conn.write(new Uint8Array(1));
              n = 0;
            }
          }
        } catch { /* the sender went away */ }
        conn.close();
      })();
    }
  })();
  console.log(JSON.stringify({
    agent: agent.port,
    raw: raw.addr.port,
    wss: wss.addr.port,
    tcp: tcp.addr.port,
  }));
  const stop = Promise.withResolvers<void>();
  Deno.addSignalListener("SIGTERM", () => stop.resolve());
  await stop.promise;
  tcp.close();
  await agent.close();
  await raw.shutdown();
  await wss.shutdown();
}
