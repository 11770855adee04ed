import assert from "node:assert/strict";
import fc from "fast-check";
import { lz4Compress } from "../../src/native/codec.ts";
import { startAgent } from "../../src/peer/agent.ts";
import { authenticateAgent } from "../../src/peer/auth.ts";
import { connectPeer } from "../../src/peer/client.ts";
import { BatchCompressor } from "../../src/peer/compression.ts";
import { ProtocolError } from "../../src/peer/errors.ts";
import {
  decodeFrame,
  encodePages,
  FLAG_LZ4,
  FrameKind,
  MAX_FRAME_BYTES,
} from "../../src/peer/frames.ts";
import { loadIdentity } from "../../src/peer/identity.ts";
import type { Link } from "../../src/peer/link.ts";
import { integrityHash, pageHashes } from "../../src/native/page_hash.ts";
import { CapabilitiesSchema, decodeControl, encodeControl } from "../../src/peer/protocol.ts";
import { connectWsLink } from "../../src/peer/ws_client.ts";
import { makeBatch, makeNodePair, type NodePair } from "./support/nodes.ts";
import { textPages } from "./support/text_pages.ts";

const ADDR = 0x7f55_0000_0000;

function addressesOf(n: number, first = ADDR): number[] {
  return Array.from({ length: n }, (_, i) => first + i * 4096);
}

function throwsProtocolError(fn: () => unknown, what = ""): void {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ProtocolError, `${what}: expected ProtocolError, got ${e}`);
    return;
  }
  assert.fail(`${what}: expected a ProtocolError`);
}

/** Rewrite a compressed page frame's declared raw size and re-seal its integrity hash. */
function withDeclaredSize(frame: Uint8Array, count: number, rawLength: number): Uint8Array {
  const out = frame.slice();
  const dataAt = 40 + count * 24;
  new DataView(out.buffer).setUint32(dataAt, rawLength, true);
  out.set(integrityHash([out.subarray(0, 24), out.subarray(40, dataAt + 8)]), 24);
  return out;
}

Deno.test("a compressed page batch decodes to the exact pages and is much smaller", () => {
  const data = textPages(256);
  const packed = lz4Compress(data);
  const raw = encodePages({ stream: 1, seq: 1, pid: 7, addresses: addressesOf(256), data });
  const frame = encodePages({
    stream: 1,
    seq: 1,
    pid: 7,
    addresses: addressesOf(256),
    data,
    packed,
  });
  assert.equal(frame[6], FLAG_LZ4);
  assert.ok(frame.length < raw.length * 0.6, `${frame.length} vs ${raw.length}`);
  const f = decodeFrame(frame);
  assert.equal(f.kind, FrameKind.Pages);
  if (f.kind !== FrameKind.Pages) return;
  assert.deepEqual(f.data, data);
  assert.deepEqual(f.hashes, pageHashes(data));
  assert.equal(f.packedBytes, packed.length);
  assert.deepEqual(Array.from(f.addresses), addressesOf(256));
});

Deno.test("forged compressed batches are protocol errors: bad LZ4, lying sizes, wrong pages", () => {
  const data = textPages(16);
  const addresses = addressesOf(16);
  const base = { stream: 1, seq: 1, pid: 7, addresses, data };
  // Garbage instead of an LZ4 block.
  const garbage = new Uint8Array(3000).map((_, i) => (i * 131 + 7) & 0xff);
  throwsProtocolError(() => decodeFrame(encodePages({ ...base, packed: garbage })), "garbage");
  // A block of 15 pages for 16 declared: decodes short.
  const short = lz4Compress(data.subarray(0, 15 * 4096));
  throwsProtocolError(() => decodeFrame(encodePages({ ...base, packed: short })), "short");
  // A block of other pages: decodes, but the page hashes refuse it.
  const other = lz4Compress(textPages(16, 999));
  throwsProtocolError(() => decodeFrame(encodePages({ ...base, packed: other })), "other");
  // A declared size other than count × 4096 (bigger, smaller, absurd), integrity re-sealed.
  const good = encodePages({ ...base, packed: lz4Compress(data) });
  assert.equal(decodeFrame(good).kind, FrameKind.Pages);
  for (const lie of [17 * 4096, 15 * 4096, 0, 0xffff_ffff]) {
    throwsProtocolError(() => decodeFrame(withDeclaredSize(good, 16, lie)), `size ${lie}`);
  }
  // Unknown flag combinations and a block no smaller than the data.
  const flagged = good.slice();
  flagged[6] = FLAG_LZ4 | 4;
  throwsProtocolError(() => decodeFrame(flagged), "flags");
  assert.throws(() => encodePages({ ...base, packed: new Uint8Array(16 * 4096) }), RangeError);
});

Deno.test("property: compressed batches round-trip; a corrupted byte never yields other pages", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 8 }),
      fc.uint8Array({ minLength: 1, maxLength: 64 }),
      fc.nat(),
      fc.integer({ min: 1, max: 255 }),
      (n, motif, pos, xor) => {
        const data = new Uint8Array(n * 4096);
        for (let i = 0; i < data.length; i++) data[i] = motif[i % motif.length] ^ (i >> 9);
        const packed = lz4Compress(data);
        if (packed.length + 8 > data.length) return;
        const frame = encodePages({
          stream: 3,
          seq: 5,
          pid: 9,
          addresses: addressesOf(n),
          data,
          packed,
        });
        const f = decodeFrame(frame);
        assert.ok(f.kind === FrameKind.Pages && f.data.every((v, i) => v === data[i]));
        const bad = frame.slice();
        bad[pos % bad.length] ^= xor;
        // Refused, or (a match offset pointing at an identical earlier run) the very same pages.
        try {
          const g = decodeFrame(bad);
          assert.ok(g.kind === FrameKind.Pages && g.data.every((v, i) => v === data[i]));
        } catch (e) {
          assert.ok(e instanceof ProtocolError, `byte ${pos % bad.length}: ${e}`);
        }
      },
    ),
    { numRuns: 400 },
  );
});

Deno.test("property: random bytes behind a valid, sealed compressed-page header never crash", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 4 }),
      fc.uint8Array({ minLength: 1, maxLength: 6000 }),
      fc.boolean(),
      (n, body, realHashes) => {
        const packedLength = Math.min(body.length, n * 4096 - 8);
        const dataAt = 40 + n * 24;
        const bytes = new Uint8Array(dataAt + 8 + packedLength);
        const view = new DataView(bytes.buffer);
        view.setUint32(0, 0x47503255, true);
        bytes[4] = 1;
        bytes[5] = FrameKind.Pages;
        view.setUint16(6, FLAG_LZ4, true);
        view.setUint32(8, 1, true);
        view.setUint32(12, 1, true);
        view.setUint32(16, 42, true);
        view.setUint32(20, n, true);
        for (let i = 0; i < n; i++) view.setUint32(40 + i * 8, 4096 * (i + 1), true);
        if (realHashes) bytes.set(pageHashes(new Uint8Array(n * 4096)), 40 + n * 8);
        view.setUint32(dataAt, n * 4096, true);
        view.setUint32(dataAt + 4, packedLength, true);
        bytes.set(body.subarray(0, packedLength), dataAt + 8);
        bytes.set(integrityHash([bytes.subarray(0, 24), bytes.subarray(40, dataAt + 8)]), 24);
        try {
          const f = decodeFrame(bytes);
          // Only a block that really decodes to pages matching the hashes may pass.
          assert.ok(f.kind === FrameKind.Pages);
          assert.deepEqual(pageHashes(f.data), f.hashes);
        } catch (e) {
          assert.ok(e instanceof ProtocolError, String(e));
        }
      },
    ),
    { numRuns: 1500 },
  );
  assert.ok(MAX_FRAME_BYTES > 0);
});

Deno.test("the codecs capability is optional (older peers) and bounded", () => {
  const caps = {
    arch: "x86_64",
    kernel: "6.18",
    criu: null,
    trackerBackends: ["hash"],
    freeMemoryBytes: 1,
    freeDiskBytes: 1,
    transports: ["ws" as const],
    version: "0.1.0",
  };
  assert.equal(CapabilitiesSchema.safeParse(caps).success, true);
  assert.equal(CapabilitiesSchema.safeParse({ ...caps, codecs: ["lz4"] }).success, true);
  assert.equal(CapabilitiesSchema.safeParse({ ...caps, codecs: ["x".repeat(17)] }).success, false);
  const hello = decodeControl(encodeControl({ type: "hello", capabilities: caps }));
  assert.equal(hello.type, "hello");
});

Deno.test("BatchCompressor: on packs text, sends random raw; off never packs; auto waits for the link", () => {
  const text = textPages(256), random = makeBatch(5, ADDR, 256, 0).data;
  const on = new BatchCompressor("on");
  assert.ok(on.pack(text));
  assert.equal(on.pack(random), undefined);
  assert.deepEqual([on.stats.packedFrames, on.stats.rawFrames], [1, 1]);
  const off = new BatchCompressor("off");
  assert.equal(off.pack(text), undefined);
  const auto = new BatchCompressor("auto");
  for (let i = 0; i < 4; i++) assert.ok(auto.pack(text), "probe batches are compressed");
  assert.equal(auto.pack(text), undefined, "raw until the link rate is known");
  assert.ok(auto.stats.compressBps > 0);
  auto.observeLink(8 * 2 ** 20, 1000); // 8 MiB/s: far slower than LZ4
  assert.ok(auto.stats.active);
  assert.ok(auto.pack(text));
  const fast = new BatchCompressor("auto");
  for (let i = 0; i < 4; i++) fast.pack(text);
  fast.observeLink(2 ** 40, 1); // a link faster than any codec
  assert.equal(fast.stats.active, false);
  assert.equal(fast.pack(text), undefined);
});

/** An in-process agent (real TLS WebSocket) whose restore handler checks `expected` byte for byte. */
async function withVerifyingAgent(
  fn: (pair: NodePair, logs: Record<string, unknown>[]) => Promise<void>,
  expected: () => { pid: number; addresses: number[]; data: Uint8Array },
): Promise<void> {
  const pair = await makeNodePair();
  const logs: Record<string, unknown>[] = [];
  const agent = await startAgent({
    listen: "127.0.0.1:0",
    stateDir: pair.b,
    memoryLimitBytes: 1 << 20, // most pages spill: the spill path sees decompressed pages too
    log: (r) => logs.push(r),
    onRestore: ({ store }) => {
      const want = expected();
      let bad = 0;
      for (let i = 0; i < want.addresses.length; i++) {
        const got = store.get(want.pid, want.addresses[i]);
        const w = want.data.subarray(i * 4096, (i + 1) * 4096);
        if (!got || got.length !== 4096 || got.some((v, k) => v !== w[k])) bad++;
      }
      const ok = bad === 0 && store.pageCount === want.addresses.length;
      return Promise.resolve(ok ? { ok, pid: 1 } : { ok, error: `${bad} pages differ` });
    },
  });
  pair.pinB(`127.0.0.1:${agent.port}`);
  try {
    await fn(pair, logs);
  } finally {
    await agent.close();
    pair.cleanup();
  }
}

Deno.test("channel: compressible pages arrive byte for byte with far fewer bytes on the wire", async () => {
  const n = 4096; // 16 MiB of redis-like text
  const want = { pid: 77, addresses: addressesOf(n), data: textPages(n) };
  await withVerifyingAgent(async (pair) => {
    const client = await connectPeer({ stateDir: pair.a, peer: "b" });
    assert.deepEqual(client.remote.codecs, ["lz4"]);
    const ch = await client.openMigration("cz-1", n * 4096, { compress: "on" });
    for (let at = 0; at < n; at += 1000) {
      const end = Math.min(n, at + 1000);
      await ch.sendPages({
        pid: want.pid,
        addresses: want.addresses.slice(at, end),
        data: want.data.subarray(at * 4096, end * 4096),
      });
    }
    await ch.flush();
    const frames = 4 * 4 + 1; // 4 × (1000 pages = 4 frames) + 96 pages
    const rawFrameBytes = n * (4096 + 24) + frames * 40;
    assert.ok(ch.bytesSent < rawFrameBytes * 0.6, `${ch.bytesSent} of ${rawFrameBytes} raw`);
    assert.equal(ch.bytesStored, n * 4096);
    const s = ch.compression;
    assert.equal(s.mode, "on");
    assert.equal(s.packedFrames, frames);
    assert.equal(s.rawBytes, n * 4096);
    const result = await ch.restore({ check: true });
    assert.equal(result.ok, true, result.error);
    await client.close();
  }, () => want);
});

Deno.test("channel: incompressible pages go raw; compress off sends raw too", async () => {
  const n = 1024;
  const batch = makeBatch(78, ADDR, n, 0);
  const want = { pid: 78, addresses: batch.addresses, data: batch.data };
  await withVerifyingAgent(async (pair) => {
    const client = await connectPeer({ stateDir: pair.a, peer: "b" });
    const rawFrameBytes = n * (4096 + 24) + (n / 256) * 40;
    for (const compress of ["on", "off"] as const) {
      const ch = await client.openMigration(`cz-${compress}`, n * 4096, { compress });
      await ch.sendPages(batch);
      await ch.flush();
      assert.equal(ch.bytesSent, rawFrameBytes);
      assert.equal(ch.compression.packedFrames, 0);
      assert.equal(ch.compression.rawFrames, n / 256);
      assert.equal(ch.compression.mode, compress);
      assert.equal((await ch.restore({})).ok, true);
    }
    await client.close();
  }, () => want);
});

/** An authenticated raw link with migration `id` prepared (or resumed) on stream 1. */
async function authedLink(pair: NodePair, port: number, id: string, resume = false) {
  const link: Link = await connectWsLink({ hostname: "127.0.0.1", port, timeoutMs: 5000 });
  await authenticateAgent(link, {
    identity: await loadIdentity(pair.a),
    peerKey: pair.bKey,
    peerName: "b",
  });
  await link.send(
    encodeControl({ type: "prepare", migrationId: id, stream: 1, expectedBytes: 1 << 24, resume }),
  );
  const first = await nextControl(link);
  assert.equal(first?.type, "ack");
  return { link, ack: first };
}

async function nextControl(link: Link) {
  for (let i = 0; i < 20; i++) {
    const m = await link.next(5000);
    if (m === null) return null;
    if (typeof m === "string") return decodeControl(m);
  }
  return null;
}

Deno.test("forged compressed frames close the connection, are logged, and store nothing", async () => {
  const pair = await makeNodePair();
  const logs: Record<string, unknown>[] = [];
  const agent = await startAgent({
    listen: "127.0.0.1:0",
    stateDir: pair.b,
    memoryLimitBytes: 0,
    log: (r) => logs.push(r),
  });
  try {
    const data = textPages(64);
    const addresses = addressesOf(64);
    const base = { stream: 1, pid: 5, addresses, data };
    const forged = [
      encodePages({ ...base, seq: 2, packed: new Uint8Array(5000).fill(0xf0) }), // bad LZ4
      encodePages({ ...base, seq: 2, packed: lz4Compress(data.subarray(0, 63 * 4096)) }), // short
      withDeclaredSize(encodePages({ ...base, seq: 2, packed: lz4Compress(data) }), 64, 1 << 30),
      encodePages({ ...base, seq: 2, packed: lz4Compress(textPages(64, 5)) }), // other pages
    ];
    for (const [i, bad] of forged.entries()) {
      const id = `forged-${i}`;
      // A good compressed chunk first (seq 1): it is stored and acknowledged.
      let { link } = await authedLink(pair, agent.port, id);
      await link.send(encodePages({ ...base, seq: 1, packed: lz4Compress(data) }));
      const ack = await nextControl(link);
      assert.ok(ack?.type === "ack" && ack.seq === 1 && ack.pages === 64, JSON.stringify(ack));
      // The forged chunk (seq 2): the agent answers with a protocol error and closes.
      await link.send(bad);
      const answer = await nextControl(link);
      assert.ok(answer?.type === "error" && answer.code === "protocol", JSON.stringify(answer));
      assert.equal(await nextControl(link), null);
      // Resuming shows the store holds chunk 1 only; the spill file holds its 64 pages only.
      ({ link } = await authedLink(pair, agent.port, id, true).then((r) => {
        const a = r.ack;
        assert.ok(a?.type === "ack" && a.seq === 1 && a.pages === 64, JSON.stringify(a));
        return r;
      }));
      assert.equal(Deno.statSync(`${pair.b}/migrations/${id}/pages.spill`).size, 64 * 4096);
      await link.send(encodeControl({ type: "abort", migrationId: id, reason: "test done" }));
      link.close();
    }
    const closed = logs.filter((l) =>
      l.msg === "closing connection" && String(l.reason).includes("compress") ||
      l.msg === "closing connection" && String(l.reason).includes("hashes")
    );
    assert.equal(closed.length, forged.length, JSON.stringify(logs.map((l) => l.reason)));
  } finally {
    await agent.close();
    pair.cleanup();
  }
});
