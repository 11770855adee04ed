import assert from "node:assert/strict";
import { startAgent } from "../../src/peer/agent.ts";
import { connectPeer } from "../../src/peer/client.ts";
import { PeerError } from "../../src/peer/errors.ts";
import { openTunnel } from "../../src/peer/tunnel.ts";
import { makeNodePair } from "./support/nodes.ts";

/** Deterministic bytes. */
function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

async function readAll(conn: Deno.Conn): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const buf = new Uint8Array(65536);
    const r = await conn.read(buf);
    if (r === null) break;
    parts.push(buf.subarray(0, r));
    n += r;
  }
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) out.set(p, (o += p.length) - p.length);
  return out;
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let o = 0; o < data.length;) o += await conn.write(data.subarray(o, o + 100_000));
}

for (const transport of ["ws", "quic"] as const) {
  Deno.test(`${transport}: a tunnel carries two connections both ways, byte for byte, while the restore runs`, async () => {
    const pair = await makeNodePair();
    const toSource = pattern(9 << 20, 1), toAgent = pattern(7 << 20, 2);
    // The source's local program: for each connection, send `toAgent`, then echo back a digest
    // of what it got by comparing in place.
    let sourceGot: Uint8Array[] = [];
    const agent = await startAgent({
      listen: "127.0.0.1:0",
      stateDir: pair.b,
      transport,
      onRestore: async (ctx) => {
        // Inside the restore handler: the session must keep serving tunnel traffic meanwhile.
        const tunnel = await ctx.openTunnel();
        const results = await Promise.all([0, 1].map(async () => {
          const c = await Deno.connect({ hostname: "127.0.0.1", port: tunnel.localPort });
          const [got] = await Promise.all([
            readAll(c),
            writeAll(c, toSource).then(() => c.closeWrite()),
          ]);
          c.close();
          return got;
        }));
        await tunnel.idle();
        const ok = results.every((r) =>
          r.length === toAgent.length && r.every((b, i) => b === toAgent[i])
        );
        const stats = tunnel.stats;
        await tunnel.close();
        return {
          ok,
          pid: 1,
          error: ok ? undefined : `agent got ${results.map((r) => r.length)}`,
          restoreMs: stats.bytesIn,
        };
      },
    });
    pair.pinB(`127.0.0.1:${agent.port}`);
    const program = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const served = (async () => {
      const conns: Promise<void>[] = [];
      for (let i = 0; i < 2; i++) {
        const c = await program.accept();
        conns.push((async () => {
          const [got] = await Promise.all([
            readAll(c),
            writeAll(c, toAgent).then(() => c.closeWrite()),
          ]);
          sourceGot.push(got);
          c.close();
        })());
      }
      await Promise.all(conns);
    })();
    try {
      const client = await connectPeer({ stateDir: pair.a, peer: "b", transport });
      const ch = await client.openMigration(`tun-${transport}`, 1 << 20);
      const tunnel = await openTunnel({
        channel: ch,
        localPort: (program.addr as Deno.NetAddr).port,
      });
      const result = await ch.restore({ engine: "test" });
      assert.equal(result.ok, true, result.error);
      assert.equal(result.restoreMs, 2 * toAgent.length, "agent-side bytes in");
      await served;
      await tunnel.idle();
      assert.equal(sourceGot.length, 2);
      for (const g of sourceGot) assert.deepEqual(g, toSource);
      assert.deepEqual(tunnel.stats, {
        connections: 2,
        bytesIn: 2 * toSource.length,
        bytesOut: 2 * toAgent.length,
      });
      await tunnel.close();
      await client.close();
    } finally {
      program.close();
      await agent.close();
      pair.cleanup();
      sourceGot = [];
    }
  });
}

Deno.test("a tunnel needs a peer channel; without a source tunnel the agent's connection is refused", async () => {
  await assert.rejects(
    // deno-lint-ignore no-explicit-any
    () => openTunnel({ channel: {} as any }),
    (e) => e instanceof PeerError && e.code === "rejected",
  );
  const pair = await makeNodePair();
  const agent = await startAgent({
    listen: "127.0.0.1:0",
    stateDir: pair.b,
    onRestore: async (ctx) => {
      const tunnel = await ctx.openTunnel();
      const c = await Deno.connect({ hostname: "127.0.0.1", port: tunnel.localPort });
      const got = await readAll(c).catch(() => new Uint8Array(1));
      c.close();
      await tunnel.close();
      return { ok: got.length === 0, pid: 1 };
    },
  });
  pair.pinB(`127.0.0.1:${agent.port}`);
  try {
    const client = await connectPeer({ stateDir: pair.a, peer: "b" });
    const ch = await client.openMigration("no-tunnel", 1 << 20);
    const result = await ch.restore({ engine: "test" });
    assert.equal(result.ok, true, "the local connection was closed without data");
    await client.close();
  } finally {
    await agent.close();
    pair.cleanup();
  }
});
