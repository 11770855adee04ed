/**
 * The shaped half of the peer benchmark (build/bench/peer.ts, root only): plain TCP, then the
 * authenticated channel over WebSocket and over QUIC, between two network namespaces joined by a
 * tbf-shaped veth pair; and {@linkcode sendOnce}, the sender each of those runs in its namespace.
 *
 * @example
 * ```ts
 * const shaped = await shapedRuns(a, b, ia.publicKey, ib, 256, ["1gbit"]);
 * ```
 *
 * @module
 */
import { connectPeer } from "../../../src/peer/mod.ts";
import { addPeer } from "../../../src/peer/peers.ts";
import { createNetnsPair, netnsUnavailable } from "../../../tests/support/netns.ts";
import { loadIdentity } from "../../../src/peer/identity.ts";
import { BENCH_SCRIPT, makeBatches, readPorts } from "./runs.ts";
import { rawQuicRun } from "./quic_raw.ts";

/**
 * One migration of `mib` MiB to peer "b" over `transport` ("ws" or "quic"), or (transport "tcp")
 * the same bytes as one plain TCP stream to `tcpAddress`, or (transport "quic_raw") as one raw
 * QUIC stream to `quicAddress` trusting the certificate of the node whose state is `sinkStateDir`;
 * prints {"ms": …}.
 */
export async function sendOnce(
  stateDir: string,
  mib: number,
  transport: string,
  tcpAddress?: string,
  quicAddress?: string,
  sinkStateDir?: string,
): Promise<void> {
  const batches = makeBatches(mib);
  if (transport === "quic_raw") {
    const [hostname, port] = quicAddress!.split(":");
    const { certPem } = await loadIdentity(sinkStateDir!);
    const opts = { hostname, port: Number(port), certPem };
    await rawQuicRun({ ...opts, batches: batches.slice(0, 4) }); // warm up
    console.log(JSON.stringify({ ms: await rawQuicRun({ ...opts, batches }) }));
    return;
  }
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
export async function shapedRuns(
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
  const self = BENCH_SCRIPT;
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
          const transport of (Deno.env.get("U2CM_BENCH_TRANSPORTS") ?? "tcp,ws,quic,quic_raw")
            .split(",")
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
              `${net.addrB}:${ports.quic}`,
              b,
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
        for (const t of ["tcp", "ws", "quic", "quic_raw"]) {
          if (row[`${t}_ms`] === undefined) continue;
          row[`${t}_mbit_s`] = Math.round(goodput(row[`${t}_ms`]) / 1e6);
          row[`${t}_line_ratio`] = r3(goodput(row[`${t}_ms`]) / nominal);
        }
        row.ws_tcp_ratio = r3(row.tcp_ms / row.ws_ms);
        row.quic_tcp_ratio = r3(row.tcp_ms / row.quic_ms);
        // What u2cm's framing, window and store leave of Deno's own QUIC on this machine.
        if (row.quic_raw_ms) row.quic_raw_ratio = r3(row.quic_raw_ms / row.quic_ms);
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
