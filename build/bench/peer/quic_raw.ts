/**
 * Raw Deno QUIC for the peer benchmark (build/bench/peer.ts): the same bytes as one QUIC stream,
 * without u2cm's framing, hashing, window or page store — the limit of Deno's QUIC on the machine,
 * against which the channel's QUIC transport is measured. The sink reads a bidirectional stream to
 * its end, then answers one byte.
 *
 * @example
 * ```ts
 * const sink = serveRawQuic({ hostname: "127.0.0.1", cert, key });
 * const ms = await rawQuicRun({ hostname: "127.0.0.1", port: sink.port, certPem: cert, batches });
 * ```
 *
 * @module
 */
import { AGENT_SERVER_NAME } from "../../../src/peer/quic.ts";

const ALPN = "u2cm-bench-raw";

/** Options of {@linkcode serveRawQuic}. */
export interface RawQuicSinkOptions {
  /** Address to bind (port 0). */
  hostname: string;
  /** The node's certificate (PEM), issued for `u2cm-agent`. */
  cert: string;
  /** Its key (PEM). */
  key: string;
}

/** A raw QUIC sink on a free UDP port; `close` stops it. */
export function serveRawQuic(opts: RawQuicSinkOptions): { port: number; close(): void } {
  const endpoint = new Deno.QuicEndpoint({ hostname: opts.hostname, port: 0 });
  const listener = endpoint.listen({ cert: opts.cert, key: opts.key, alpnProtocols: [ALPN] });
  (async () => {
    for await (const incoming of listener) {
      (async () => {
        const conn = await incoming.accept();
        for await (const stream of conn.incomingBidirectionalStreams) {
          const reader = stream.readable.getReader({ mode: "byob" });
          let buf = new Uint8Array(1 << 20);
          for (;;) {
            const { value, done } = await reader.read(buf);
            if (done || !value) break;
            buf = new Uint8Array(value.buffer);
          }
          const writer = stream.writable.getWriter();
          await writer.write(new Uint8Array(1));
          await writer.close();
        }
      })().catch(() => {});
    }
  })().catch(() => {});
  return {
    port: endpoint.addr.port,
    close: () => {
      listener.stop();
      endpoint.close();
    },
  };
}

/** Options of {@linkcode rawQuicRun}. */
export interface RawQuicRunOptions {
  hostname: string;
  port: number;
  /** The sink's certificate (PEM): the only trust anchor. */
  certPem: string;
  /** What to send. */
  batches: { data: Uint8Array }[];
}

/** Send every batch on one QUIC stream and wait for the sink's answer; ms from the first write. */
export async function rawQuicRun(opts: RawQuicRunOptions): Promise<number> {
  const conn = await Deno.connectQuic({
    hostname: opts.hostname,
    port: opts.port,
    serverName: AGENT_SERVER_NAME,
    caCerts: [opts.certPem],
    alpnProtocols: [ALPN],
  });
  try {
    const stream = await conn.createBidirectionalStream();
    const writer = stream.writable.getWriter();
    const started = performance.now();
    for (const b of opts.batches) {
      for (let at = 0; at < b.data.length; at += 1 << 20) {
        await writer.ready;
        await writer.write(b.data.subarray(at, at + (1 << 20)));
      }
    }
    await writer.close();
    const reader = stream.readable.getReader();
    await reader.read();
    return performance.now() - started;
  } finally {
    conn.close();
  }
}
