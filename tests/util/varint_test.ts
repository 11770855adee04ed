import assert from "node:assert/strict";
import fc from "fast-check";
import { ByteSink, ByteSource, crc32, DecodeError } from "../../src/util/mod.ts";

Deno.test("varints round-trip every safe non-negative integer", () => {
  fc.assert(
    fc.property(fc.array(fc.maxSafeNat(), { maxLength: 50 }), (values) => {
      const sink = new ByteSink(1);
      for (const v of values) sink.varint(v);
      const src = new ByteSource(sink.toBytes());
      for (const v of values) assert.equal(src.varint(), v);
      assert.equal(src.remaining, 0);
    }),
  );
});

Deno.test("reading past the end raises a DecodeError, never garbage", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
      const src = new ByteSource(bytes);
      try {
        for (let i = 0; i < 100; i++) src.varint();
        assert.fail("100 varints cannot fit in 40 bytes");
      } catch (e) {
        assert.ok(e instanceof DecodeError);
      }
    }),
  );
});

Deno.test("crc32 matches the IEEE check value", () => {
  assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
});
