/**
 * A TCP forwarder on loopback whose "link" a test can cut and restore: the stand-in for a network
 * fault when no namespace is needed. It forwards two ports: the agent's (WebSocket) port and its
 * sealed bulk stream's; an agent told `--bulk-advertise <proxy.bulkPort>` (or `bulkAdvertise`)
 * sends its peers' bulk streams through the forwarder too, so a cut takes down every byte of the
 * link, and the bulk connection alone can be cut as well.
 *
 * @module
 */

/** A running forwarder. */
export interface Proxy {
  /** Port clients connect to (forwarded to the agent's port). */
  port: number;
  /** Port bulk streams connect to (forwarded to the agent's bulk port). */
  bulkPort: number;
  /** Bytes forwarded client → target, on both ports. */
  readonly forwarded: number;
  /** Bytes forwarded client → target on the bulk port. */
  readonly bulkForwarded: number;
  /** Bulk connections accepted and forwarded so far. */
  readonly bulkConnections: number;
  /** Close every open connection; while `down`, new connections are refused (closed at once). */
  cut(down: boolean): void;
  /** As {@linkcode Proxy.cut}, for the bulk port only; returns how many connections it closed. */
  cutBulk(down: boolean): number;
  /**
   * Cut the bulk port ({@linkcode Proxy.cutBulk}) the moment its byte count reaches `bytes` (in
   * the middle of whatever record is passing); resolves with how many connections it closed.
   */
  cutBulkAt(bytes: number, down: boolean): Promise<number>;
  /** Stop the forwarder. */
  close(): void;
  /** Forward new connections to `port` (and bulk ones to `bulkPort`) from now on. */
  retarget(port: number, bulkPort?: number): void;
}

interface Forwarder {
  port: number;
  forwarded: number;
  accepted: number;
  /** Called after each forwarded read client → target. */
  onBytes?: () => void;
  cut(down: boolean): number;
  close(): void;
  target: number;
}

function forward(target: number): Forwarder {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  let down = false;
  const f: Forwarder = {
    port: (listener.addr as Deno.NetAddr).port,
    forwarded: 0,
    accepted: 0,
    target,
    cut(isDown: boolean) {
      down = isDown;
      const n = conns.size;
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      conns.clear();
      return n / 2;
    },
    close() {
      f.cut(true);
      try {
        listener.close();
      } catch { /* closed */ }
    },
  };
  const pipe = async (from: Deno.Conn, to: Deno.Conn, count: boolean) => {
    const buf = new Uint8Array(256 * 1024);
    try {
      for (;;) {
        const n = await from.read(buf);
        if (n === null) break;
        for (let o = 0; o < n;) o += await to.write(buf.subarray(o, n));
        if (count) {
          f.forwarded += n;
          f.onBytes?.();
        }
      }
    } catch { /* cut */ }
    for (const c of [from, to]) {
      try {
        c.close();
      } catch { /* closed */ }
      conns.delete(c);
    }
  };
  (async () => {
    for await (const client of listener) {
      if (down || f.target === 0) {
        client.close();
        continue;
      }
      try {
        const to = await Deno.connect({ hostname: "127.0.0.1", port: f.target });
        f.accepted++;
        conns.add(client);
        conns.add(to);
        pipe(client, to, true);
        pipe(to, client, false);
      } catch {
        client.close();
      }
    }
  })().catch(() => {});
  return f;
}

/**
 * Forward 127.0.0.1:<port> to `targetPort` and 127.0.0.1:<bulkPort> to `bulkTargetPort` (none
 * yet: bulk connections are closed at once until {@linkcode Proxy.retarget} names one).
 */
export function startProxy(targetPort: number, bulkTargetPort = 0): Proxy {
  const main = forward(targetPort);
  const bulk = forward(bulkTargetPort);
  return {
    port: main.port,
    bulkPort: bulk.port,
    get forwarded() {
      return main.forwarded + bulk.forwarded;
    },
    get bulkForwarded() {
      return bulk.forwarded;
    },
    get bulkConnections() {
      return bulk.accepted;
    },
    cut(down: boolean) {
      main.cut(down);
      bulk.cut(down);
    },
    cutBulk: (down) => bulk.cut(down),
    cutBulkAt(bytes: number, down: boolean) {
      return new Promise((resolve) => {
        bulk.onBytes = () => {
          if (bulk.forwarded < bytes) return;
          bulk.onBytes = undefined;
          resolve(bulk.cut(down));
        };
        bulk.onBytes();
      });
    },
    close() {
      main.close();
      bulk.close();
    },
    retarget(port: number, bulkPort?: number) {
      main.target = port;
      if (bulkPort !== undefined) bulk.target = bulkPort;
    },
  };
}
