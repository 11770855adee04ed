/**
 * The agent's end of sealed bulk streams: a TCP listener next to the WebSocket one. An
 * authenticated session registers a token and a key it got over its TLS link (`bulkOpen`); a TCP
 * connection that presents that token (once, within a few seconds) and whose first record opens
 * under that key becomes the session's bulk stream: its records are binary frames for the
 * session's inbox, decoded and checked exactly as frames from the WebSocket are. Anything else —
 * an unknown or reused token, a record that fails to open, a stream cut mid-record — closes the
 * connection, and once attached, the session's link with it.
 *
 * @example
 * ```ts
 * const bulk = await serveBulk({ hostname: "0.0.0.0", port: 0, aead, maxMessageBytes: 2 << 20 });
 * const attached = bulk.expect(token, key, sink); // resolves when the client's stream proved the key
 * ```
 *
 * @module
 */
import type { Aead } from "./aead.ts";
import type { BulkSink } from "./link.ts";
import { BULK_PREAMBLE, CLIENT_LABEL, readSealed, TOKEN_BYTES } from "./sealed_records.ts";

/** How long a token waits for its connection, and a connection for its token and proof. */
const ATTACH_TIMEOUT_MS = 5000;
/** Connections that have not yet presented a registered token, at most. */
const MAX_PENDING = 64;

/** Options of {@linkcode serveBulk}. */
export interface ServeBulkOptions {
  /** Address to bind. */
  hostname: string;
  /** Port; 0 picks a free one. */
  port: number;
  /** The AEAD (aead.ts). */
  aead: Aead;
  /** Largest frame accepted. */
  maxMessageBytes: number;
}

/** A running bulk listener. */
export interface BulkServer {
  /** The bound port (announced to authenticated peers as `bulkPort`). */
  readonly port: number;
  /**
   * Expect a connection presenting `token` (16 bytes) sealed with `key`; resolves true once its
   * proof record opened (frames then go to `sink`), false when none came in time.
   */
  expect(token: Uint8Array, key: Uint8Array, sink: BulkSink): Promise<boolean>;
  /** Stop listening and drop every bulk connection. */
  close(): void;
}

interface Expected {
  key: Uint8Array;
  sink: BulkSink;
  attached: (ok: boolean) => void;
}

/** Start the listener. */
export function serveBulk(opts: ServeBulkOptions): Promise<BulkServer> {
  const listener = Deno.listen({ hostname: opts.hostname, port: opts.port });
  const expected = new Map<string, Expected>();
  const arrived = new Map<string, (e: Expected) => void>();
  const conns = new Set<Deno.Conn>();
  let pending = 0;
  const serveOne = async (conn: Deno.Conn) => {
    conns.add(conn);
    pending++;
    let counted = true;
    const settle = () => {
      if (counted) pending--;
      counted = false;
    };
    let token: string | undefined;
    let attached = false;
    try {
      const hello = await readExactly(conn, BULK_PREAMBLE.length + TOKEN_BYTES, ATTACH_TIMEOUT_MS);
      if (!hello || !BULK_PREAMBLE.every((b, i) => hello[i] === b)) return;
      const id = hex(hello.subarray(BULK_PREAMBLE.length));
      if (arrived.has(id)) return; // another connection holds this token
      token = id;
      let e = expected.get(id);
      if (!e) {
        e = await new Promise<Expected | undefined>((resolve) => {
          const timer = setTimeout(() => resolve(undefined), ATTACH_TIMEOUT_MS);
          arrived.set(id, (x) => {
            clearTimeout(timer);
            resolve(x);
          });
        });
        if (!e) return;
      }
      expected.delete(id); // one connection per token, once
      arrived.set(id, () => {});
      settle();
      const { sink, attached: done } = e;
      sink.closed.then(() => {
        try {
          conn.close();
        } catch { /* closed */ }
      });
      const proofTimer = setTimeout(() => conn.close(), ATTACH_TIMEOUT_MS);
      const why = await readSealed(
        conn,
        opts.aead.opener(e.key, CLIENT_LABEL),
        opts.maxMessageBytes,
        {
          proven: () => {
            clearTimeout(proofTimer);
            attached = true;
            done(true);
          },
          message: (m) => sink.push(m),
        },
      );
      clearTimeout(proofTimer);
      if (attached) sink.fail(`bulk stream: ${why}`);
      else done(false);
    } catch {
      /* the connection went away */
    } finally {
      settle();
      if (token) arrived.delete(token);
      conns.delete(conn);
      try {
        conn.close();
      } catch { /* closed */ }
    }
  };
  (async () => {
    for await (const conn of listener) {
      if (pending >= MAX_PENDING) {
        conn.close();
        continue;
      }
      serveOne(conn);
    }
  })().catch(() => {});
  return Promise.resolve({
    port: (listener.addr as Deno.NetAddr).port,
    expect(token, key, sink) {
      const id = hex(token);
      return new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => {
          expected.delete(id);
          resolve(false);
        }, 2 * ATTACH_TIMEOUT_MS);
        const e: Expected = {
          key,
          sink,
          attached: (ok) => {
            clearTimeout(timer);
            resolve(ok);
          },
        };
        const waiting = arrived.get(id);
        if (waiting) waiting(e);
        else if (!expected.has(id)) expected.set(id, e);
        else resolve(false);
      });
    },
    close() {
      try {
        listener.close();
      } catch { /* closed */ }
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
    },
  });
}

async function readExactly(
  conn: Deno.Conn,
  n: number,
  timeoutMs: number,
): Promise<Uint8Array | undefined> {
  const buf = new Uint8Array(n);
  const timer = setTimeout(() => conn.close(), timeoutMs);
  try {
    for (let fill = 0; fill < n;) {
      const r = await conn.read(buf.subarray(fill));
      if (r === null) return undefined;
      fill += r;
    }
    return buf;
  } finally {
    clearTimeout(timer);
  }
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
