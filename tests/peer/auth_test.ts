import assert from "node:assert/strict";
import { startAgent } from "../../src/peer/agent.ts";
import { authenticateAgent, freshNonce, transcript } from "../../src/peer/auth.ts";
import { connectPeer } from "../../src/peer/client.ts";
import { PeerError } from "../../src/peer/errors.ts";
import { encodeFile, encodePages } from "../../src/peer/frames.ts";
import { initIdentity, loadIdentity } from "../../src/peer/identity.ts";
import { base64url, sign } from "../../src/peer/keys.ts";
import type { Link } from "../../src/peer/link.ts";
import { integrityHash } from "../../src/native/page_hash.ts";
import { addPeer } from "../../src/peer/peers.ts";
import { decodeControl, encodeControl } from "../../src/peer/protocol.ts";
import { connectWsLink } from "../../src/peer/ws_client.ts";
import { makeBatch, makeNodePair, type NodePair } from "./support/nodes.ts";

interface Fixture {
  pair: NodePair;
  port: number;
  logs: Record<string, unknown>[];
  close(): Promise<void>;
}

async function withAgent(fn: (f: Fixture) => Promise<void>): Promise<void> {
  const pair = await makeNodePair();
  const logs: Record<string, unknown>[] = [];
  const agent = await startAgent({
    listen: "127.0.0.1:0",
    stateDir: pair.b,
    log: (r) => logs.push(r),
  });
  pair.pinB(`127.0.0.1:${agent.port}`);
  try {
    await fn({ pair, port: agent.port, logs, close: () => agent.close() });
  } finally {
    await agent.close();
    pair.cleanup();
  }
}

async function rawLink(port: number): Promise<Link> {
  return await connectWsLink({ hostname: "127.0.0.1", port, timeoutMs: 5000 });
}

/** Read until the agent closes the link; returns the control messages it sent. */
async function drain(link: Link): Promise<string[]> {
  const seen: string[] = [];
  for (let i = 0; i < 100; i++) {
    const m = await link.next(5000);
    if (m === null) break;
    if (typeof m === "string") seen.push(decodeControl(m).type);
  }
  return seen;
}

function migrationsWritten(stateDir: string): string[] {
  return [...Deno.readDirSync(`${stateDir}/migrations`)].map((e) => e.name);
}

async function challengeOf(link: Link) {
  const m = await link.next(5000);
  const c = decodeControl(m as string);
  assert.equal(c.type, "challenge");
  return c as Extract<typeof c, { type: "challenge" }>;
}

Deno.test("a pinned client authenticates; its capabilities and the agent's are exchanged", async () => {
  await withAgent(async ({ pair, logs }) => {
    const client = await connectPeer({ stateDir: pair.a, peer: "b" });
    assert.equal(client.remote.arch, Deno.build.arch);
    assert.ok(client.remote.freeDiskBytes > 0);
    await client.close();
    assert.ok(logs.some((l) => l.msg === "peer authenticated" && l.peer === "a"));
  });
});

Deno.test("an unknown key is refused, logged, and nothing is written", async () => {
  await withAgent(async ({ pair, port, logs }) => {
    const stranger = `${pair.root}/stranger`;
    const id = await initIdentity(stranger);
    addPeer(stranger, {
      name: "b",
      address: `127.0.0.1:${port}`,
      publicKey: pair.bKey,
      certFingerprint: pair.bFingerprint,
    });
    await assert.rejects(
      () => connectPeer({ stateDir: stranger, peer: "b" }),
      (e) => e instanceof PeerError && e.code === "auth",
    );
    const failure = logs.find((l) => l.msg === "authentication failed");
    assert.ok(failure, JSON.stringify(logs));
    assert.match(String(failure.reason), new RegExp(`unknown client key ${id.publicKey}`));
    assert.deepEqual(migrationsWritten(pair.b), []);
  });
});

Deno.test("a wrong signature is refused", async () => {
  await withAgent(async ({ pair, port, logs }) => {
    const a = await loadIdentity(pair.a);
    const other = await initIdentity(`${pair.root}/other`);
    const link = await rawLink(port);
    const c = await challengeOf(link);
    const nc = freshNonce();
    const t = {
      certFingerprint: c.certFingerprint,
      serverKey: c.publicKey,
      clientKey: a.publicKey,
      ns: c.nonce,
      nc,
    };
    // Signed by another key, claiming to be a.
    const signature = base64url(await sign(other.privateKey, transcript("client", t)));
    await link.send(encodeControl({ type: "auth", publicKey: a.publicKey, nonce: nc, signature }));
    assert.deepEqual(await drain(link), ["error"]);
    assert.ok(logs.some((l) => String(l.reason).includes("bad signature")));
    // A server-role signature by the right key is also refused (roles are bound).
    const link2 = await rawLink(port);
    const c2 = await challengeOf(link2);
    const t2 = { ...t, ns: c2.nonce, nc: freshNonce() };
    const sig2 = base64url(await sign(a.privateKey, transcript("server", t2)));
    await link2.send(
      encodeControl({ type: "auth", publicKey: a.publicKey, nonce: t2.nc, signature: sig2 }),
    );
    assert.deepEqual(await drain(link2), ["error"]);
  });
});

Deno.test("a replayed auth message and a reused client nonce are refused", async () => {
  await withAgent(async ({ pair, port, logs }) => {
    const a = await loadIdentity(pair.a);
    const link = await rawLink(port);
    const c = await challengeOf(link);
    const nc = freshNonce();
    const t = {
      certFingerprint: c.certFingerprint,
      serverKey: c.publicKey,
      clientKey: a.publicKey,
      ns: c.nonce,
      nc,
    };
    const auth = encodeControl({
      type: "auth",
      publicKey: a.publicKey,
      nonce: nc,
      signature: base64url(await sign(a.privateKey, transcript("client", t))),
    });
    await link.send(auth);
    assert.equal(decodeControl((await link.next(5000)) as string).type, "welcome");
    link.close();
    // Replay the recorded message on a new connection: the agent's nonce differs.
    const replay = await rawLink(port);
    await challengeOf(replay);
    await replay.send(auth);
    assert.deepEqual(await drain(replay), ["error"]);
    // Sign the new challenge properly but reuse the old client nonce.
    const again = await rawLink(port);
    const c3 = await challengeOf(again);
    const t3 = { ...t, ns: c3.nonce };
    await again.send(encodeControl({
      type: "auth",
      publicKey: a.publicKey,
      nonce: nc,
      signature: base64url(await sign(a.privateKey, transcript("client", t3))),
    }));
    assert.deepEqual(await drain(again), ["error"]);
    assert.ok(logs.some((l) => String(l.reason).includes("replayed client nonce")));
  });
});

Deno.test("messages and frames before authentication close the connection", async () => {
  await withAgent(async ({ pair, port, logs }) => {
    for (
      const early of [
        encodeControl({
          type: "prepare",
          migrationId: "m1",
          stream: 1,
          expectedBytes: 4096,
          resume: false,
        }),
        encodePages({ stream: 1, seq: 1, pid: 1, addresses: [4096], data: new Uint8Array(4096) }),
        "{not json",
        "x".repeat(100_000),
      ]
    ) {
      const link = await rawLink(port);
      await challengeOf(link);
      await link.send(early);
      assert.deepEqual(await drain(link), ["error"]);
    }
    assert.equal(logs.filter((l) => l.msg === "authentication failed").length, 4);
    assert.deepEqual(migrationsWritten(pair.b), []);
  });
});

/** An authenticated raw link with migration `id` prepared on stream 1. */
async function authedLink(pair: NodePair, port: number, id = "m1"): Promise<Link> {
  const link = await rawLink(port);
  await authenticateAgent(link, {
    identity: await loadIdentity(pair.a),
    peerKey: pair.bKey,
    peerName: "b",
  });
  await link.send(encodeControl({
    type: "prepare",
    migrationId: id,
    stream: 1,
    expectedBytes: 1 << 20,
    resume: false,
  }));
  assert.equal(decodeControl((await link.next(5000)) as string).type, "ack");
  return link;
}

Deno.test("after authentication: oversized, malformed and corrupted input closes the link", async () => {
  await withAgent(async ({ pair, port, logs }) => {
    const cases: (string | Uint8Array)[] = [
      new Uint8Array(3 * 1024 * 1024), // oversized frame
      "{]", // malformed JSON
      '{"v":1,"type":"welcome"}', // a message only agents send
      new Uint8Array(100).fill(7), // malformed binary
    ];
    const corrupt = encodePages({
      stream: 1,
      seq: 1,
      pid: 3,
      addresses: [4096],
      data: makeBatch(3, 4096, 1, 0).data,
    });
    corrupt[corrupt.length - 1] ^= 1; // a flipped bit in page data
    cases.push(corrupt);
    for (const [i, bad] of cases.entries()) {
      const link = await authedLink(pair, port, `m${i}`);
      await link.send(bad).catch(() => {});
      const seen = await drain(link);
      assert.ok(seen.length <= 1, `${seen}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(logs.filter((l) => l.msg === "closing connection").length >= 4, JSON.stringify(logs));
  });
});

Deno.test("a file name with a path is refused and nothing lands outside the migration", async () => {
  await withAgent(async ({ pair, port, logs }) => {
    const link = await authedLink(pair, port);
    // Forge a frame naming "../../../../x" (encodeFile refuses such names) with a valid hash.
    const evil = "../../../evil";
    const frame = encodeFile({
      stream: 1,
      seq: 1,
      name: "a".repeat(evil.length),
      offset: 0,
      total: 4,
      data: new Uint8Array(4).fill(9),
    });
    frame.set(new TextEncoder().encode(evil), 56);
    frame.set(integrityHash([frame.subarray(0, 40), frame.subarray(56)]), 40);
    await link.send(frame);
    assert.deepEqual(await drain(link), ["error"]);
    assert.ok(logs.some((l) => String(l.reason).includes("file name")), JSON.stringify(logs));
    const found: string[] = [];
    const walk = (dir: string) => {
      for (const e of Deno.readDirSync(dir)) {
        if (e.isDirectory) walk(`${dir}/${e.name}`);
        else found.push(e.name);
      }
    };
    walk(pair.root);
    assert.ok(!found.includes("evil"));
    assert.ok(!found.some((n) => n.startsWith("aaaa")));
  });
});

Deno.test("the client refuses an agent with another key or another certificate", async () => {
  await withAgent(async ({ pair, port }) => {
    const imposter = await initIdentity(`${pair.root}/imposter`);
    addPeer(pair.a, {
      name: "wrongkey",
      address: `127.0.0.1:${port}`,
      publicKey: imposter.publicKey,
    });
    await assert.rejects(
      () => connectPeer({ stateDir: pair.a, peer: "wrongkey" }),
      (e) => e instanceof PeerError && e.code === "pin-mismatch",
    );
  });
  await withAgent(async ({ pair, port }) => {
    const imposter = await initIdentity(`${pair.root}/imposter`);
    addPeer(pair.a, {
      name: "b",
      address: `127.0.0.1:${port}`,
      publicKey: pair.bKey,
      certFingerprint: imposter.certFingerprint,
    }, true);
    await assert.rejects(
      () => connectPeer({ stateDir: pair.a, peer: "b" }),
      (e) => e instanceof PeerError && e.code === "pin-mismatch" && /fingerprint/.test(e.message),
    );
  });
});
