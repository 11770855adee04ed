import assert from "node:assert/strict";
import { startAgent } from "../../src/peer/agent.ts";
import { connectPeer } from "../../src/peer/client.ts";
import { PeerError } from "../../src/peer/errors.ts";
import { makeBatch, makeNodePair } from "./support/nodes.ts";
import { startProxy } from "./support/proxy.ts";

const PAGES_PER_BATCH = 512;

/** Restore handler that compares every stored page with the generator. */
function verifyingHandler(pid: number, batches: number, first: number) {
  return ({ store }: { store: import("../../src/peer/page_store.ts").PageStore }) => {
    let bad = 0;
    for (let b = 0; b < batches; b++) {
      const want = makeBatch(pid, first + b * PAGES_PER_BATCH * 4096, PAGES_PER_BATCH, 0);
      for (let i = 0; i < PAGES_PER_BATCH; i++) {
        const page = store.get(pid, want.addresses[i]);
        const w = want.data.subarray(i * 4096, (i + 1) * 4096);
        if (!page || page.some((v, k) => v !== w[k])) bad++;
      }
    }
    const ok = bad === 0 && store.pageCount === batches * PAGES_PER_BATCH;
    return Promise.resolve({
      ok,
      error: ok ? undefined : `${bad} pages differ, ${store.pageCount} stored`,
    });
  };
}

Deno.test("a cut link is resumed from the last acknowledged chunk; every page arrives intact", async () => {
  const pair = await makeNodePair();
  const logs: Record<string, unknown>[] = [];
  const batches = 48; // 96 MiB
  const proxy = startProxy(0);
  const agent = await startAgent({
    listen: "127.0.0.1:0",
    stateDir: pair.b,
    onRestore: verifyingHandler(77, batches, 0x7f0000000000),
    log: (r) => logs.push(r),
    // The sealed bulk stream goes through the forwarder too: a cut takes both connections.
    bulkAdvertise: proxy.bulkPort,
  });
  proxy.retarget(agent.port, agent.bulkPort);
  pair.pinB(`127.0.0.1:${proxy.port}`);
  try {
    const client = await connectPeer({ stateDir: pair.a, peer: "b", resumeTimeoutMs: 20_000 });
    assert.equal(client.sealedBulk, true, "pages travel on the sealed bulk stream");
    const ch = await client.openMigration("resumable", batches * PAGES_PER_BATCH * 4096);
    for (let b = 0; b < batches; b++) {
      await ch.sendPages(
        makeBatch(77, 0x7f0000000000 + b * PAGES_PER_BATCH * 4096, PAGES_PER_BATCH, 0),
      );
      if (b === 12) proxy.cut(false); // drop every connection, reconnects allowed
      if (b === 30) {
        // The window (64 MiB) can hold batch 30 before the first resume: cut the new link only.
        for (let i = 0; i < 400 && !logs.some((l) => l.msg === "migration resumed"); i++) {
          await new Promise((r) => setTimeout(r, 50));
        }
        proxy.cut(true); // link down for a while
        setTimeout(() => proxy.cut(false), 1500);
      }
    }
    await ch.flush();
    const result = await ch.restore({});
    assert.equal(result.ok, true, result.error);
    assert.ok(logs.filter((l) => l.msg === "migration resumed").length >= 2, JSON.stringify(logs));
    assert.ok(proxy.bulkConnections >= 3, `bulk streams: ${proxy.bulkConnections} (one per link)`);
    await client.close();
  } finally {
    proxy.close();
    await agent.close();
    pair.cleanup();
  }
});

Deno.test("a link that stays down aborts cleanly on both sides", async () => {
  const pair = await makeNodePair();
  const logs: Record<string, unknown>[] = [];
  const proxy = startProxy(0);
  const agent = await startAgent({
    listen: "127.0.0.1:0",
    stateDir: pair.b,
    resumeTimeoutMs: 1500,
    log: (r) => logs.push(r),
    bulkAdvertise: proxy.bulkPort,
  });
  proxy.retarget(agent.port, agent.bulkPort);
  pair.pinB(`127.0.0.1:${proxy.port}`);
  try {
    const client = await connectPeer({ stateDir: pair.a, peer: "b", resumeTimeoutMs: 1000 });
    assert.equal(client.sealedBulk, true, "pages travel on the sealed bulk stream");
    const ch = await client.openMigration("doomed", 64 << 20);
    await ch.sendPages(makeBatch(5, 0x10000000, 1024, 0));
    await ch.flush();
    assert.deepEqual([...Deno.readDirSync(`${pair.b}/migrations`)].map((e) => e.name), ["doomed"]);
    proxy.cut(true);
    await assert.rejects(async () => {
      for (let b = 1; b < 64; b++) {
        await ch.sendPages(makeBatch(5, 0x10000000 + b * (4 << 20), 1024, 0));
      }
      await ch.flush();
    }, (e) => e instanceof PeerError && e.code === "closed" && /could not resume/.test(e.message));
    // The agent drops the store once its resume timeout passes.
    for (let i = 0; i < 100 && [...Deno.readDirSync(`${pair.b}/migrations`)].length; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual([...Deno.readDirSync(`${pair.b}/migrations`)], []);
    assert.ok(
      logs.some((l) => l.msg === "migration aborted" && /did not resume/.test(String(l.reason))),
    );
    await client.close();
  } finally {
    proxy.close();
    await agent.close();
    pair.cleanup();
  }
});
