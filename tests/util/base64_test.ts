import assert from "node:assert/strict";
import { decodeBase64, encodeBase64 } from "../../src/util/base64.ts";

/** The portable encoding (a binary string through btoa), as the reference. */
function reference(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

Deno.test("base64 matches the btoa reference both ways for every length and byte", () => {
  for (let n = 0; n < 70; n++) {
    const bytes = new Uint8Array(n).map((_, i) => (i * 89 + n * 7) & 255);
    const text = encodeBase64(bytes);
    assert.equal(text, reference(bytes), `length ${n}`);
    assert.deepEqual(decodeBase64(text), bytes, `length ${n}`);
  }
  const all = new Uint8Array(256).map((_, i) => i);
  assert.deepEqual(decodeBase64(encodeBase64(all)), all);
  assert.throws(() => decodeBase64("a*b="));
});
