import assert from "node:assert/strict";
import { startAgent } from "../../src/peer/agent.ts";
import { connectPeer } from "../../src/peer/client.ts";
import { PeerError } from "../../src/peer/errors.ts";
import { initIdentity } from "../../src/peer/identity.ts";
import { listPeers } from "../../src/peer/peers.ts";
import { makeBatch, makeNodePair } from "./support/nodes.ts";

Deno.test("QUIC: control and bulk streams carry a migration; the certificate is learnt and pinned", async () => {
  const pair = await makeNodePair();
  let verified = "";
  const agent = await startAgent({
    listen: "127.0.0.1:0",
    stateDir: pair.b,
    transport: "quic",
    onRestore: ({ store }) => {
      for (let b = 0; b < 16; b++) {
        const want = makeBatch(8, 0x7f0000000000 + b * (1 << 22), 1024, 0);
        for (let i = 0; i < 1024; i += 31) {
          const got = store.get(8, want.addresses[i]);
          if (!got || got.some((v, k) => v !== want.data[i * 4096 + k])) {
            verified += `bad ${b}:${i} `;
          }
        }
      }
      return Promise.resolve({ ok: verified === "" && store.pageCount === 16 * 1024 });
    },
  });
  pair.pinB(`127.0.0.1:${agent.port}`);
  try {
    assert.equal(listPeers(pair.a)[0].certPem, undefined);
    const client = await connectPeer({ stateDir: pair.a, peer: "b", transport: "quic" });
    assert.ok(listPeers(pair.a)[0].certPem?.includes("BEGIN CERTIFICATE"));
    assert.deepEqual(client.remote.transports, ["quic"]);
    const ch = await client.openMigration("q1", 64 << 20);
    for (let b = 0; b < 16; b++) {
      await ch.sendPages(makeBatch(8, 0x7f0000000000 + b * (1 << 22), 1024, 0));
    }
    await ch.sendFile("core-1.img", new Uint8Array(100_000).fill(3));
    await ch.flush();
    assert.equal((await ch.remoteHashes(8)).size, 16 * 1024);
    const r = await ch.restore({});
    assert.equal(r.ok, true, verified);
    await client.close();
  } finally {
    await agent.close();
    pair.cleanup();
  }
});

Deno.test("QUIC: an agent with another certificate than the pinned one is refused", async () => {
  const pair = await makeNodePair();
  const agent = await startAgent({ listen: "127.0.0.1:0", stateDir: pair.b, transport: "quic" });
  pair.pinB(`127.0.0.1:${agent.port}`);
  try {
    const client = await connectPeer({ stateDir: pair.a, peer: "b", transport: "quic" });
    await client.close();
    await agent.close();
    // A new identity answers at the pinned address: the pinned PEM no longer verifies its TLS.
    await initIdentity(pair.b, { force: true });
    const b2 = await startAgent({
      listen: `127.0.0.1:${agent.port}`,
      stateDir: pair.b,
      transport: "quic",
    })
      .catch(() => undefined);
    if (!b2) return; // port taken meanwhile: nothing to test
    try {
      await assert.rejects(
        () => connectPeer({ stateDir: pair.a, peer: "b", transport: "quic", timeoutMs: 3000 }),
        (e) => e instanceof PeerError && e.code === "pin-mismatch",
      );
    } finally {
      await b2.close();
    }
  } finally {
    await agent.close();
    pair.cleanup();
  }
});
