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
 * goodput), then the authenticated channel over WebSocket and over QUIC, then the same bytes as
 * one raw Deno QUIC stream (no u2cm framing: Deno's QUIC limit here). `shaped.<rate>` gives each
 * time and `ws_line_ratio` / `quic_line_ratio` / `quic_raw_line_ratio`: goodput over the nominal
 * rate (goal ≥ 0.9), `ws_tcp_ratio` / `quic_tcp_ratio`: against the plain TCP stream, and
 * `quic_raw_ratio`: the channel's QUIC against raw QUIC.
 *
 * Usage: `deno run -A build/bench/peer.ts [--mib 256] [--runs 3] [--rates 100mbit,1gbit]
 *         [--no-shaped] [--no-loopback]`. `U2CM_BENCH_AGENT_FLAGS` adds Deno flags to the agent
 * child (e.g. `--cpu-prof --cpu-prof-dir=DIR`), `U2CM_BENCH_TRANSPORTS` picks the shaped runs
 * (default `tcp,ws,quic,quic_raw`), `U2CM_BENCH_WINDOW_MIB` their window (default: the client's).
 *
 * @module
 */
import { initIdentity } from "../../src/peer/identity.ts";
import { addPeer } from "../../src/peer/peers.ts";
import { BENCH_SCRIPT, makeBatches, rawRun, readPorts } from "./peer/runs.ts";
import { loopbackRuns } from "./peer/loopback.ts";
import { sendOnce, shapedRuns } from "./peer/shaped.ts";
import { serve } from "./peer/serve.ts";

if (Deno.args[0] === "--serve") {
  await serve(Deno.args[1], Deno.args[2] ?? "127.0.0.1:0", Number(Deno.args[3] ?? 2 ** 40));
} else if (Deno.args[0] === "--wss-run") {
  // Deno's WebSocket over Deno's TLS (started with --unsafely-ignore-certificate-errors).
  const batches = makeBatches(Number(Deno.args[2]));
  await rawRun(Number(Deno.args[1]), batches.slice(0, 4), "wss");
  console.log(JSON.stringify({ ms: await rawRun(Number(Deno.args[1]), batches, "wss") }));
} else if (Deno.args[0] === "--send") {
  const [, stateDir, mib, transport, tcp, quic, sinkStateDir] = Deno.args;
  await sendOnce(stateDir, Number(mib), transport, tcp, quic, sinkStateDir);
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
      BENCH_SCRIPT,
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
