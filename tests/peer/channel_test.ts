import assert from "node:assert/strict";
import { startAgent } from "../../src/peer/agent.ts";
import { connectPeer } from "../../src/peer/client.ts";
import { PeerError } from "../../src/peer/errors.ts";
import { pageHashes } from "../../src/native/page_hash.ts";
import type { PageStore } from "../../src/peer/page_store.ts";
import type { RestoreRequest } from "../../src/peer/session.ts";
import { makeBatch, makeNodePair } from "./support/nodes.ts";

Deno.test("pages, hashes and files reach the agent's store; restore runs the handler", async () => {
  const pair = await makeNodePair();
  let seen:
    | { migrationId: string; dir: string; store: PageStore; request: RestoreRequest }
    | undefined;
  let check = "";
  const agent = await startAgent({
    listen: "127.0.0.1:0",
    stateDir: pair.b,
    memoryLimitBytes: 2 << 20, // force spilling
    onRestore: (ctx) => {
      seen = ctx;
      // Verify inside the handler, while the store is alive.
      for (const pid of [11, 12]) {
        for (const round of [0]) {
          const b = makeBatch(pid, 0x7f0000000000, 700, round);
          for (let i = 0; i < 700; i += 97) {
            const want = b.data.subarray(i * 4096, (i + 1) * 4096);
            const page = ctx.store.get(pid, b.addresses[i]);
            if (pid === 11 && i < 100) continue; // rewritten in round 1, checked below
            if (!page || page.some((v, k) => v !== want[k])) check += `bad ${pid}:${i} `;
          }
        }
      }
      const r1 = makeBatch(11, 0x7f0000000000, 100, 1);
      for (let i = 0; i < 100; i++) {
        const page = ctx.store.get(11, r1.addresses[i])!;
        if (page.some((v, k) => v !== r1.data[i * 4096 + k])) check += `bad r1:${i} `;
      }
      return Promise.resolve({ ok: true, pid: 4242 });
    },
  });
  pair.pinB(`127.0.0.1:${agent.port}`);
  try {
    const client = await connectPeer({ stateDir: pair.a, peer: "b" });
    const ch = await client.openMigration("mig-1", 8 << 20);
    await ch.sendPages(makeBatch(11, 0x7f0000000000, 700, 0));
    await ch.sendPages({ ...makeBatch(12, 0x7f0000000000, 700, 0) });
    const r1 = makeBatch(11, 0x7f0000000000, 100, 1);
    await ch.sendPages({ ...r1, hashes: pageHashes(r1.data) });
    await ch.stopCopy("start");
    await ch.sendFile("inventory.img", new TextEncoder().encode("inventory"));
    await ch.sendFile("empty.img", new Uint8Array(0));
    const big = new Uint8Array(2_500_000).map((_, i) => i % 251);
    await ch.sendFile("pages-1.img", big);
    await ch.stopCopy("end");
    await ch.flush();
    assert.equal(ch.bytesStored, 1400 * 4096 + 9 + 2_500_000);
    const hashes = await ch.remoteHashes(11);
    assert.equal(hashes.size, 700);
    assert.deepEqual(hashes.get(r1.addresses[5]), pageHashes(r1.data.subarray(5 * 4096, 6 * 4096)));
    const result = await ch.restore({ images: "images", tree: [1, 2] });
    assert.deepEqual({ ok: result.ok, pid: result.pid }, { ok: true, pid: 4242 });
    assert.ok((result.restoreMs ?? -1) >= 0);
    assert.equal(check, "");
    assert.ok(seen);
    assert.equal(seen.migrationId, "mig-1");
    assert.equal(seen.dir, `${pair.b}/migrations/mig-1`);
    assert.deepEqual(seen.request, { images: "images", tree: [1, 2] });
    assert.ok(seen.store.spilledPages > 0);
    assert.deepEqual(seen.store.readFile("pages-1.img"), big);
    assert.deepEqual(
      seen.store.files().map((f) => f.name).sort(),
      ["empty.img", "inventory.img", "pages-1.img"],
    );
    await client.close();
    // After a finished restore and the source's goodbye, the agent releases the store.
    for (let i = 0; i < 50 && Deno.readDirSync(`${pair.b}/migrations`).next().value; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual([...Deno.readDirSync(`${pair.b}/migrations`)], []);
  } finally {
    await agent.close();
    pair.cleanup();
  }
});

Deno.test("migrations are isolated; ids, sizes and names are checked; abort deletes the store", async () => {
  const pair = await makeNodePair();
  const agent = await startAgent({ listen: "127.0.0.1:0", stateDir: pair.b });
  pair.pinB(`127.0.0.1:${agent.port}`);
  try {
    const client = await connectPeer({ stateDir: pair.a, peer: "b" });
    const one = await client.openMigration("one", 1 << 20);
    const two = await client.openMigration("two", 1 << 20);
    await one.sendPages(makeBatch(5, 0x1000, 4, 0));
    await two.sendPages(makeBatch(5, 0x1000, 4, 1));
    await Promise.all([one.flush(), two.flush()]);
    const h1 = await one.remoteHashes(5);
    const h2 = await two.remoteHashes(5);
    assert.notDeepEqual(h1.get(0x1000), h2.get(0x1000));
    await assert.rejects(() => client.openMigration("one", 1), /already in use/);
    await assert.rejects(() => client.openMigration("../x", 1), PeerError);
    await assert.rejects(() => client.openMigration("huge", 2 ** 40), /fit/);
    await assert.rejects(() => one.sendFile("../passwd", new Uint8Array(1)), PeerError);
    // Quota: at most max(2 × expected, 256 MiB) per migration.
    const small = await client.openMigration("small", 0);
    await assert.rejects(async () => {
      for (let i = 0; i < 70; i++) {
        await small.sendPages(makeBatch(9, 0x100000 + i * (1 << 22), 1024, 0));
      }
      await small.flush();
    }, (e) => e instanceof PeerError && e.code === "aborted" && /quota/.test(e.message));
    assert.deepEqual([...Deno.readDirSync(`${pair.b}/migrations`)].map((e) => e.name).sort(), [
      "one",
      "two",
    ]);
    await one.abort("test");
    await two.flush();
    for (let i = 0; i < 50 && [...Deno.readDirSync(`${pair.b}/migrations`)].length > 1; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.deepEqual([...Deno.readDirSync(`${pair.b}/migrations`)].map((e) => e.name), ["two"]);
    await assert.rejects(() => one.sendPages(makeBatch(5, 0x1000, 1, 0)), /aborted/);
    const r = await two.restore({});
    assert.equal(r.ok, false);
    assert.match(r.error ?? "", /no restore handler/);
    await client.close();
  } finally {
    await agent.close();
    pair.cleanup();
  }
});
