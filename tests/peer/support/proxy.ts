/**
 * A TCP forwarder on loopback whose "link" a test can cut and restore: the stand-in for a network
 * fault when no namespace is needed.
 *
 * @module
 */

/** A running forwarder. */
export interface Proxy {
  /** Port clients connect to. */
  port: number;
  /** Bytes forwarded client → target. */
  readonly forwarded: number;
  /** Close every open connection; while `down`, new connections are refused (closed at once). */
  cut(down: boolean): void;
  /** Stop the forwarder. */
  close(): void;
  /** Forward new connections to `port` from now on (an agent restarted on another port). */
  retarget(port: number): void;
}

/** Forward 127.0.0.1:<port> to `targetPort`. */
export function startProxy(targetPort: number): Proxy {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  let down = false;
  let forwarded = 0;
  let forwardTo = targetPort;
  const pipe = async (from: Deno.Conn, to: Deno.Conn, count: boolean) => {
    const buf = new Uint8Array(256 * 1024);
    try {
      for (;;) {
        const n = await from.read(buf);
        if (n === null) break;
        if (count) forwarded += n;
        for (let o = 0; o < n;) o += await to.write(buf.subarray(o, n));
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
      if (down) {
        client.close();
        continue;
      }
      try {
        const target = await Deno.connect({ hostname: "127.0.0.1", port: forwardTo });
        conns.add(client);
        conns.add(target);
        pipe(client, target, true);
        pipe(target, client, false);
      } catch {
        client.close();
      }
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    get forwarded() {
      return forwarded;
    },
    cut(isDown: boolean) {
      down = isDown;
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      conns.clear();
    },
    close() {
      this.cut(true);
      listener.close();
    },
    retarget(port: number) {
      forwardTo = port;
    },
  };
}
