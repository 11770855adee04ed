import assert from "node:assert/strict";
import fc from "fast-check";
import { ProtocolError } from "../../src/peer/errors.ts";
import {
  decodeFrame,
  encodeFile,
  encodeHashes,
  encodePages,
  FrameKind,
  isValidFileName,
  MAX_FRAME_BYTES,
} from "../../src/peer/frames.ts";
import { hashTs, integrityHash, pageHashes } from "../../src/native/page_hash.ts";

function pages(n: number, seed: number): Uint8Array {
  const data = new Uint8Array(n * 4096);
  const words = new Uint32Array(data.buffer);
  let x = seed | 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x;
  }
  return data;
}

function throwsProtocolError(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ProtocolError, `expected ProtocolError, got ${(e as Error)?.stack}`);
    return;
  }
  assert.fail("expected a ProtocolError");
}

Deno.test("page hashes from the shim equal the TypeScript fallback", () => {
  const data = pages(8, 7);
  const native = pageHashes(data);
  const ts = new BigUint64Array(16);
  for (let i = 0; i < 8; i++) hashTs(data.subarray(i * 4096, (i + 1) * 4096), ts, 2 * i);
  assert.deepEqual(native, new Uint8Array(ts.buffer));
  assert.notDeepEqual(integrityHash([data.subarray(0, 33)]), integrityHash([data.subarray(0, 34)]));
});

Deno.test("a page batch round-trips with its addresses, hashes and data", () => {
  const data = pages(3, 11);
  const addresses = [0x7f00_0000_0000, 0x1000, 2 ** 47 - 4096];
  const frame = decodeFrame(encodePages({ stream: 2, seq: 9, pid: 123, addresses, data }));
  assert.equal(frame.kind, FrameKind.Pages);
  if (frame.kind !== FrameKind.Pages) return;
  assert.deepEqual(Array.from(frame.addresses), addresses);
  assert.deepEqual(frame.data, data);
  assert.deepEqual(frame.hashes, pageHashes(data));
  assert.equal(frame.seq, 9);
  assert.equal(frame.pid, 123);
});

Deno.test("file and hash frames round-trip", () => {
  const data = new TextEncoder().encode("core-1.img contents");
  const f = decodeFrame(
    encodeFile({ stream: 1, seq: 4, name: "core-1.img", offset: 5, total: 5 + data.length, data }),
  );
  assert.equal(f.kind, FrameKind.File);
  if (f.kind === FrameKind.File) {
    assert.equal(f.name, "core-1.img");
    assert.equal(f.offset, 5);
    assert.deepEqual(f.data, data);
  }
  const h = decodeFrame(
    encodeHashes({
      stream: 1,
      seq: 3,
      pid: 9,
      addresses: new Float64Array([4096, 8192]),
      hashes: new Uint8Array(32).fill(3),
      last: true,
    }),
  );
  assert.equal(h.kind, FrameKind.Hashes);
  if (h.kind === FrameKind.Hashes) assert.equal(h.last, true);
});

Deno.test("a page batch with a wrong page hash is refused on encode-side lies", () => {
  const data = pages(2, 3);
  const bad = encodePages({
    stream: 1,
    seq: 1,
    pid: 1,
    addresses: [4096, 8192],
    data,
    hashes: new Uint8Array(32),
  });
  throwsProtocolError(() => decodeFrame(bad));
});

Deno.test("file names with paths, '..' or odd characters are invalid", () => {
  for (const bad of ["../x", "a/b", "..", ".hidden", "a..b", "", "x".repeat(129), "a\0b", "é"]) {
    assert.equal(isValidFileName(bad), false, bad);
  }
  for (const good of ["pages-1.img", "core-123.img", "inventory.img", "a_b-c.d"]) {
    assert.equal(isValidFileName(good), true, good);
  }
  assert.throws(() =>
    encodeFile({
      stream: 1,
      seq: 1,
      name: "../etc/passwd",
      offset: 0,
      total: 1,
      data: new Uint8Array(1),
    })
  );
});

Deno.test("property: random bytes never crash the frame decoder", () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 5000 }), (bytes) => {
      throwsProtocolError(() => decodeFrame(bytes));
    }),
    { numRuns: 2000 },
  );
});

Deno.test("property: random bytes behind a valid common header never crash the decoder", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 5 }),
      fc.uint8Array({ minLength: 24, maxLength: 9000 }),
      (kind, body) => {
        const bytes = new Uint8Array(16 + body.length);
        const view = new DataView(bytes.buffer);
        view.setUint32(0, 0x47503255, true);
        bytes[4] = 1;
        bytes[5] = kind;
        view.setUint32(8, 1, true);
        view.setUint32(12, 1, true);
        bytes.set(body, 16);
        throwsProtocolError(() => decodeFrame(bytes));
      },
    ),
    { numRuns: 2000 },
  );
});

Deno.test("property: any single corrupted byte of a valid frame is detected", () => {
  const frames = [
    encodePages({ stream: 1, seq: 1, pid: 5, addresses: [4096, 12288], data: pages(2, 5) }),
    encodeFile({
      stream: 1,
      seq: 2,
      name: "mm-1.img",
      offset: 0,
      total: 300,
      data: new Uint8Array(300).fill(9),
    }),
    encodeHashes({
      stream: 1,
      seq: 1,
      pid: 5,
      addresses: new Float64Array([4096]),
      hashes: new Uint8Array(16).fill(1),
      last: false,
    }),
  ];
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: frames.length - 1 }),
      fc.nat(),
      fc.integer({ min: 1, max: 255 }),
      (which, pos, xor) => {
        const bytes = frames[which].slice();
        bytes[pos % bytes.length] ^= xor;
        throwsProtocolError(() => decodeFrame(bytes));
      },
    ),
    { numRuns: 3000 },
  );
});

Deno.test("property: truncated or extended frames are refused", () => {
  const frame = encodePages({ stream: 1, seq: 1, pid: 5, addresses: [4096], data: pages(1, 9) });
  fc.assert(
    fc.property(fc.integer({ min: -frame.length, max: 64 }), (delta) => {
      if (delta === 0) return;
      const bytes = new Uint8Array(frame.length + delta);
      bytes.set(delta > 0 ? frame : frame.subarray(0, frame.length + delta));
      throwsProtocolError(() => decodeFrame(bytes));
    }),
    { numRuns: 500 },
  );
  throwsProtocolError(() => decodeFrame(new Uint8Array(MAX_FRAME_BYTES + 1)));
});
