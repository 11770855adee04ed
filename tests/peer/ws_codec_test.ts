import assert from "node:assert/strict";
import fc from "fast-check";
import { startAgent } from "../../src/peer/agent.ts";
import { connectPeer } from "../../src/peer/client.ts";
import { PeerError } from "../../src/peer/errors.ts";
import { initIdentity } from "../../src/peer/identity.ts";
import { findPeer, setPeerCert } from "../../src/peer/peers.ts";
import { quicRecord, readRecords, RecordReader } from "../../src/peer/quic_records.ts";
import { FrameParser, Opcode, wsFrame } from "../../src/peer/ws_codec.ts";
import { maskCopy, maskInPlace, simdMasking } from "../../src/peer/ws_mask.ts";
import { makeBatch, makeNodePair } from "./support/nodes.ts";

Deno.test("SIMD masking equals the byte-wise definition, for any split of the payload", () => {
  assert.ok(simdMasking(), "WebAssembly SIMD masking should load on this host");
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 0, maxLength: 3000 }),
      fc.uint8Array({ minLength: 4, maxLength: 4 }),
      fc.array(fc.nat(3000), { maxLength: 4 }),
      (payload, mask, cuts) => {
        const points = [...new Set(cuts.map((c) => c % (payload.length + 1)))].sort((a, b) =>
          a - b
        );
        const parts: Uint8Array[] = [];
        let at = 0;
        for (const p of points) {
          parts.push(payload.subarray(at, p));
          at = p;
        }
        parts.push(payload.subarray(at));
        const out = new Uint8Array(payload.length);
        maskCopy(parts, mask, out);
        const want = payload.map((b, i) => b ^ mask[i & 3]);
        assert.deepEqual(out, want);
        const inPlace = payload.slice();
        maskInPlace(inPlace, mask);
        assert.deepEqual(inPlace, want);
      },
    ),
    { numRuns: 300 },
  );
  // A payload larger than the scratch memory keeps the key in phase across blocks.
  const big = new Uint8Array(3 * 1024 * 1024 + 7).map((_, i) => i * 31);
  const out = new Uint8Array(big.length);
  const mask = new Uint8Array([0xde, 0xad, 0xbe, 0xef]);
  maskCopy([big.subarray(0, 5), big.subarray(5)], mask, out);
  for (let i = 0; i < big.length; i += 4099) assert.equal(out[i], big[i] ^ mask[i & 3]);
});

Deno.test("a masked client frame unmasks to its payload; a reused buffer is written in place", () => {
  for (const n of [0, 125, 126, 65535, 65536, 1 << 20]) {
    const payload = new Uint8Array(n).map((_, i) => i % 253);
    const reuse = new ArrayBuffer(16 + (1 << 20));
    const frame = wsFrame(
      Opcode.Binary,
      [payload.subarray(0, n >> 1), payload.subarray(n >> 1)],
      reuse,
    );
    assert.equal(frame.buffer, reuse);
    assert.equal(frame[0], 0x82);
    assert.equal(frame[1] & 0x80, 0x80, "client frames are masked");
    const headLen = n < 126 ? 2 : n < 65536 ? 4 : 10;
    const mask = frame.subarray(headLen, headLen + 4);
    const body = frame.slice(headLen + 4);
    maskInPlace(body, mask);
    assert.deepEqual(body, payload);
  }
});

Deno.test("the frame parser reassembles server frames split at every byte", () => {
  const msgs: (string | Uint8Array)[] = [];
  const text = new TextEncoder().encode("hello");
  const bin = new Uint8Array(70000).map((_, i) => i & 0xff);
  const wire = [
    Uint8Array.of(0x81, 5, ...text),
    Uint8Array.of(0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70),
    bin,
  ];
  const all = new Uint8Array(wire.reduce((s, w) => s + w.length, 0));
  let o = 0;
  for (const w of wire) all.set(w, (o += w.length) - w.length);
  const parser = new FrameParser(1 << 20, {
    message: (m) => msgs.push(m),
    ping: () => {},
    close: () => {},
    error: (why) => assert.fail(why),
  });
  for (let i = 0; i < all.length; i += 997) parser.push(all.slice(i, i + 997));
  assert.equal(msgs[0], "hello");
  assert.deepEqual(msgs[1], bin);
});

Deno.test("QUIC records reassemble from chunks of any size and refuse oversized ones", () => {
  const body = new Uint8Array(100_000).map((_, i) => i % 7);
  const rec = quicRecord(1, [body.subarray(0, 10), body.subarray(10)]);
  for (const step of [1, 3, 4096, 1 << 20]) {
    const got: Uint8Array[] = [];
    const reader = new RecordReader(1 << 20, true);
    const stream = new Uint8Array(4 + 2 * rec.length);
    stream.set([0x55, 0x32, 0x51, 0x31]);
    stream.set(rec, 4);
    stream.set(rec, 4 + rec.length);
    for (let i = 0; i < stream.length; i += step) {
      assert.equal(
        reader.push(stream.subarray(i, i + step), (_k, b) => void got.push(b)),
        undefined,
      );
    }
    assert.equal(got.length, 2);
    assert.deepEqual(got[1], body);
  }
  const small = new RecordReader(1000, false);
  assert.equal(small.push(rec, () => undefined)?.code, 3);
  assert.equal(new RecordReader(1000, true).push(rec, () => undefined)?.code, 2);
});

/** A byte stream delivering `bytes` in pieces of at most `step` (however large the reads). */
function byteStream(bytes: Uint8Array, step: number): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    type: "bytes",
    pull(c) {
      const req = c.byobRequest!;
      const view = req.view as Uint8Array;
      const n = Math.min(step, view.byteLength, bytes.length - at);
      if (n === 0) {
        c.close();
        req.respond(0);
        return;
      }
      view.set(bytes.subarray(at, at + n));
      at += n;
      req.respond(n);
    },
  });
}

Deno.test("QUIC records read straight into their own buffers (BYOB), however the stream cuts them", async () => {
  const body = new Uint8Array(100_000).map((_, i) => i % 7);
  const rec = quicRecord(1, [body.subarray(0, 10), body.subarray(10)]);
  const text = quicRecord(0, [new TextEncoder().encode("hi")]);
  const empty = quicRecord(1, []);
  const stream = new Uint8Array(4 + 2 * rec.length + text.length + empty.length);
  stream.set([0x55, 0x32, 0x51, 0x31]);
  stream.set(rec, 4);
  stream.set(text, 4 + rec.length);
  stream.set(empty, 4 + rec.length + text.length);
  stream.set(rec, 4 + rec.length + text.length + empty.length);
  const read = (bytes: Uint8Array, step: number, max = 1 << 20, preamble = true) => {
    const got: [number, Uint8Array][] = [];
    const done = readRecords(
      byteStream(bytes, step).getReader({ mode: "byob" }),
      max,
      preamble,
      (k, b) => void got.push([k, b.slice()]),
    );
    return done.then((bad) => ({ bad, got }));
  };
  for (const step of [1, 3, 4096, 1 << 20]) {
    const { bad, got } = await read(stream, step);
    assert.equal(bad, undefined);
    assert.deepEqual(got.map(([k, b]) => [k, b.length]), [[1, 100_000], [0, 2], [1, 0], [
      1,
      100_000,
    ]]);
    assert.deepEqual(got[3][1], body);
    assert.equal(new TextDecoder().decode(got[1][1]), "hi");
  }
  // A record cut short by the end of the stream is dropped; the whole ones before it are kept.
  const cut = await read(stream.subarray(0, stream.length - 1000), 4096);
  assert.equal(cut.bad, undefined);
  assert.equal(cut.got.length, 3);
  const cutHead = await read(stream.subarray(0, 4 + rec.length + 2), 4096);
  assert.equal(cutHead.got.length, 1);
  // Too large, a bad preamble, a record its receiver refuses: the stream is refused.
  assert.equal((await read(stream, 4096, 1000)).bad?.code, 3);
  assert.equal((await read(rec, 4096)).bad?.code, 2);
  const refused = await readRecords(
    byteStream(stream, 4096).getReader({ mode: "byob" }),
    1 << 20,
    true,
    () => "no thanks",
  );
  assert.equal(refused?.code, 4);
});

Deno.test("with the agent's certificate learnt, the client pins it in Deno's TLS; another is refused", async () => {
  const pair = await makeNodePair();
  const agent = await startAgent({ listen: "127.0.0.1:0", stateDir: pair.b });
  pair.pinB(`127.0.0.1:${agent.port}`);
  try {
    // The first connection learns the certificate (a probe over node:tls checks the fingerprint).
    const first = await connectPeer({ stateDir: pair.a, peer: "b" });
    const ch = await first.openMigration("learn", 1 << 20);
    await ch.sendPages(makeBatch(7, 0x7f0000000000, 16, 0));
    await ch.flush();
    await ch.abort("done");
    await first.close();
    const pinned = findPeer(pair.a, "b");
    assert.ok(pinned.certPem?.includes("BEGIN CERTIFICATE"));
    // Now a different certificate under the same pin entry fails the TLS handshake itself.
    const other = await initIdentity(`${pair.root}/other`);
    setPeerCert(pair.a, "b", other.certPem, pinned.certFingerprint!);
    await assert.rejects(
      () => connectPeer({ stateDir: pair.a, peer: "b" }),
      (e) => e instanceof PeerError && e.code === "pin-mismatch",
    );
  } finally {
    await agent.close();
    pair.cleanup();
  }
});
