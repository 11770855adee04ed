import assert from "node:assert/strict";
import { loadAead } from "../../src/peer/aead.ts";
import { startAgent } from "../../src/peer/agent.ts";
import { connectPeer } from "../../src/peer/client.ts";
import type { PageStore } from "../../src/peer/page_store.ts";
import { makeBatch, makeNodePair } from "./support/nodes.ts";

const PID = 4321, FIRST = 0x7f0000000000, BATCH = 256, BATCHES = 24; // 24 MiB

/** Restore handler checking every page and the image file the source sent. */
function verifying(file: Uint8Array) {
  return ({ store, dir }: { store: PageStore; dir: string }) => {
    let bad = 0;
    for (let b = 0; b < BATCHES; b++) {
      const want = makeBatch(PID, FIRST + b * BATCH * 4096, BATCH, 1);
      for (let i = 0; i < BATCH; i++) {
        const page = store.get(PID, want.addresses[i]);
        const w = want.data.subarray(i * 4096, (i + 1) * 4096);
        if (!page || page.some((v, k) => v !== w[k])) bad++;
      }
    }
    const got = Deno.readFileSync(`${dir}/images/core-1.img`);
    const ok = bad === 0 && store.pageCount === BATCHES * BATCH &&
      got.length === file.length && got.every((v, i) => v === file[i]);
    return Promise.resolve({ ok, error: ok ? undefined : `${bad} pages differ` });
  };
}

interface MigrateOptions {
  agentBulk: boolean;
  clientBulk: boolean;
  sealed: boolean;
  /** The bulk port the agent announces (where nothing, or something else, answers). */
  advertise?: number;
}

async function migrate(opts: MigrateOptions) {
  if (!loadAead()) {
    throw new Error("libcrypto.so.3 (OpenSSL 3) is needed for the sealed bulk stream");
  }
  const pair = await makeNodePair();
  const file = new Uint8Array(3 * 2 ** 20 + 5).map((_, i) => (i * 31) & 0xff);
  const logs: Record<string, unknown>[] = [];
  const agent = await startAgent({
    listen: "127.0.0.1:0",
    stateDir: pair.b,
    bulkPort: opts.agentBulk ? 0 : null,
    bulkAdvertise: opts.advertise,
    onRestore: verifying(file),
    log: (r) => logs.push(r),
  });
  pair.pinB(`127.0.0.1:${agent.port}`);
  try {
    const clientLogs: Record<string, unknown>[] = [];
    const client = await connectPeer({
      stateDir: pair.a,
      peer: "b",
      bulk: opts.clientBulk,
      log: (r) => clientLogs.push(r),
    });
    assert.equal(client.sealedBulk, opts.sealed);
    assert.equal(client.remote.bulkPort !== undefined, opts.agentBulk);
    const ch = await client.openMigration("bulk1", BATCHES * BATCH * 4096 + file.length);
    // Pages are sent twice (two rounds): the second copy replaces the first.
    for (const round of [0, 1]) {
      for (let b = 0; b < BATCHES; b++) {
        await ch.sendPages(makeBatch(PID, FIRST + b * BATCH * 4096, BATCH, round));
      }
    }
    await ch.sendFile("core-1.img", file);
    const result = await ch.restore({});
    assert.equal(result.ok, true, result.error);
    await client.close();
    const attached = logs.filter((l) => l.msg === "bulk stream" && l.ok);
    assert.equal(attached.length, opts.sealed ? 1 : 0);
    const fellBack = clientLogs.filter((l) =>
      l.msg === "no sealed bulk stream; sending frames over the WebSocket"
    );
    assert.equal(fellBack.length, opts.advertise ? 1 : 0, JSON.stringify(clientLogs));
  } finally {
    await agent.close();
    pair.cleanup();
  }
}

Deno.test("page batches and image files travel on the sealed bulk stream and arrive intact", async () => {
  await migrate({ agentBulk: true, clientBulk: true, sealed: true });
});

Deno.test("an agent without a bulk stream gets every frame over the WebSocket, intact", async () => {
  await migrate({ agentBulk: false, clientBulk: true, sealed: false });
});

Deno.test("a client told not to use the bulk stream sends every frame over the WebSocket", async () => {
  await migrate({ agentBulk: true, clientBulk: false, sealed: false });
});

/** A free loopback port nothing listens on. */
function closedPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

Deno.test("a bulk stream refused (nothing listens on the announced port): the migration completes over the WebSocket, intact", async () => {
  await migrate({ agentBulk: true, clientBulk: true, sealed: false, advertise: closedPort() });
});

Deno.test("a bulk stream that never attaches (the announced port swallows it): the migration completes over the WebSocket, intact", async () => {
  // Accepts and reads, never forwards: the agent never sees the token and answers no in time.
  const hole = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let swallowed = 0;
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of hole) {
      held.push(c);
      (async () => {
        const buf = new Uint8Array(65536);
        try {
          for (let n; (n = await c.read(buf)) !== null;) swallowed += n;
        } catch { /* closed */ }
      })();
    }
  })().catch(() => {});
  try {
    const port = (hole.addr as Deno.NetAddr).port;
    await migrate({ agentBulk: true, clientBulk: true, sealed: false, advertise: port });
    assert.equal(held.length, 1, "one bulk connection was tried");
    // Its preamble, token and empty proof record: no frame took it.
    assert.ok(swallowed < 256, `${swallowed} bytes went to the dead bulk port`);
  } finally {
    hole.close();
    for (const c of held) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await accepting;
  }
});
