import assert from "node:assert/strict";
import { loadAead, TAG_BYTES } from "../../src/peer/aead.ts";

function aead() {
  const a = loadAead();
  if (!a) throw new Error("libcrypto.so.3 (OpenSSL 3) is needed for the sealed bulk stream");
  return a;
}

function sealOne(parts: Uint8Array[], key: Uint8Array, label = 1, skip = 0) {
  const s = aead().sealer(key, label);
  const n = parts.reduce((t, p) => t + p.length, 0);
  let out = new Uint8Array(0);
  for (let i = 0; i <= skip; i++) {
    out = new Uint8Array(4 + n + TAG_BYTES);
    s.seal(parts, out);
  }
  s.close();
  return out;
}

function openOne(rec: Uint8Array, key: Uint8Array, label = 1): Uint8Array | undefined {
  const o = aead().opener(key, label);
  const n = rec.length - 4 - TAG_BYTES;
  const copy = rec.slice();
  const ok = o.open(copy.subarray(0, 4), copy.subarray(4, 4 + n), copy.subarray(4 + n));
  o.close();
  return ok ? copy.subarray(4, 4 + n) : undefined;
}

Deno.test("a sealed record opens to its parts' concatenation and hides them", () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const a = new Uint8Array(5000).map((_, i) => i & 0xff), b = new Uint8Array(3).fill(9);
  const rec = sealOne([a, b], key);
  assert.equal(new DataView(rec.buffer).getUint32(0, true), 5003);
  assert.notDeepEqual(rec.subarray(4, 5004), a, "the payload travels in the clear");
  assert.deepEqual(openOne(rec, key), new Uint8Array([...a, ...b]));
});

Deno.test("a record with a flipped bit in its length, body or tag, under another key, label or counter, does not open", () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const rec = sealOne([new Uint8Array(1000).fill(7)], key);
  for (const at of [0, 3, 4, 500, 1003, 1004, rec.length - 1]) {
    const bad = rec.slice();
    bad[at] ^= 0x10;
    assert.equal(openOne(bad, key), undefined, `a flip at byte ${at} went unnoticed`);
  }
  const other = crypto.getRandomValues(new Uint8Array(32));
  assert.equal(openOne(rec, other), undefined, "opened under another key");
  assert.equal(openOne(rec, key, 2), undefined, "opened under another direction label");
  // The second record of a stream cannot stand in for the first (replay, reordering).
  assert.equal(openOne(sealOne([new Uint8Array(1000).fill(7)], key, 1, 1), key), undefined);
});
