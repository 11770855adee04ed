/**
 * The serving child of the peer benchmark (build/bench/peer.ts `--serve`): the agent, a raw
 * ws:// sink, the same sink behind Deno's TLS, and a plain TCP sink; it prints their ports as one
 * JSON line and serves until SIGTERM.
 *
 * @example
 * ```ts
 * await serve("/tmp/state-b", "127.0.0.1:0", 2 ** 40);
 * ```
 *
 * @module
 */
import { createLogger, startAgent } from "../../../src/peer/mod.ts";
import { loadIdentity } from "../../../src/peer/identity.ts";
import { serveRawQuic } from "./quic_raw.ts";

/** Serve until SIGTERM (see the module doc); `tcpBytes`: when the TCP sink answers. */
export async function serve(stateDir: string, listen: string, tcpBytes: number): Promise<void> {
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
  // Raw QUIC (no u2cm framing) on UDP, with the same certificate.
  const rawQuic = serveRawQuic({ hostname, cert: identity.certPem, key: identity.keyPem });
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
    quic: rawQuic.port,
  }));
  const stop = Promise.withResolvers<void>();
  Deno.addSignalListener("SIGTERM", () => stop.resolve());
  await stop.promise;
  tcp.close();
  rawQuic.close();
  await agent.close();
  await raw.shutdown();
  await wss.shutdown();
}
