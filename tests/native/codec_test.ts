import assert from "node:assert/strict";
import { CodecError, lz4Compress, lz4Decompress } from "../../src/native/codec.ts";
import { requireCommand, testNeeding } from "../support/env.ts";
import { startMemcheck } from "../criu/support.ts";

Deno.test("lz4 round-trips zero, text-like and random pages", () => {
  const zero = new Uint8Array(256 * 4096);
  const packedZero = lz4Compress(zero);
  assert.ok(packedZero.length < zero.length / 100, `zero pages packed to ${packedZero.length}`);
  assert.deepEqual(lz4Decompress(packedZero, zero.length), zero);
  const random = crypto.getRandomValues(new Uint8Array(65536));
  assert.deepEqual(lz4Decompress(lz4Compress(random), random.length), random);
  const text = new TextEncoder().encode("key:1234 value-1234\n".repeat(20000));
  const packedText = lz4Compress(text);
  assert.ok(packedText.length < text.length / 10);
  assert.deepEqual(lz4Decompress(packedText, text.length), text);
});

testNeeding(["ptrace"], "lz4 round-trips the real memory of a running process", async () => {
  // Real memory of a running process (memcheck's page patterns plus its heap and stack).
  const w = await startMemcheck(["--mib", "4"]);
  try {
    const maps = Deno.readTextFileSync(`/proc/${w.pid}/maps`).split("\n");
    const mem = Deno.openSync(`/proc/${w.pid}/mem`);
    let checked = 0;
    for (const line of maps) {
      const m = /^([0-9a-f]+)-([0-9a-f]+) rw-p/.exec(line);
      if (!m) continue;
      const start = parseInt(m[1], 16), len = Math.min(parseInt(m[2], 16) - start, 1 << 20);
      const buf = new Uint8Array(len);
      mem.seekSync(start, Deno.SeekMode.Start);
      if ((mem.readSync(buf) ?? 0) !== len) continue;
      assert.deepEqual(lz4Decompress(lz4Compress(buf), len), buf);
      checked += len;
    }
    mem.close();
    assert.ok(checked >= 1 << 20);
  } finally {
    await w.stop();
    Deno.removeSync(w.dir, { recursive: true });
  }
});

Deno.test("malformed or truncated lz4 input is rejected, never overruns", () => {
  const data = new TextEncoder().encode("abcabcabcabc".repeat(1000));
  const packed = lz4Compress(data);
  assert.throws(
    () => lz4Decompress(packed.subarray(0, packed.length - 3), data.length),
    CodecError,
  );
  assert.throws(() => lz4Decompress(packed, data.length - 1), CodecError);
  for (let i = 0; i < 200; i++) {
    const bad = packed.slice();
    bad[(i * 7919) % bad.length] ^= 1 << (i % 8);
    try {
      const out = lz4Decompress(bad, data.length);
      assert.equal(out.length, data.length);
    } catch (e) {
      assert.ok(e instanceof CodecError);
    }
  }
});

Deno.test("the reference lz4 tool decodes our blocks (legacy frame)", () => {
  const lz4 = requireCommand("lz4");
  const data = new TextEncoder().encode("u2cm page batch ".repeat(50000));
  const packed = lz4Compress(data);
  const frame = new Uint8Array(8 + packed.length);
  const v = new DataView(frame.buffer);
  v.setUint32(0, 0x184C2102, true); // legacy frame magic
  v.setUint32(4, packed.length, true);
  frame.set(packed, 8);
  const file = Deno.makeTempFileSync({ suffix: ".lz4" });
  try {
    Deno.writeFileSync(file, frame);
    const out = new Deno.Command(lz4, { args: ["-d", "-c", file], stdout: "piped" }).outputSync();
    assert.ok(out.success);
    assert.deepEqual(out.stdout, data);
  } finally {
    Deno.removeSync(file);
  }
});
