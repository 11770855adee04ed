import assert from "node:assert/strict";
import fc from "fast-check";
import { PageIndex } from "../../src/peer/page_index.ts";

Deno.test("the page index behaves as a Map from page address to slot, across the address space", () => {
  const page = fc.oneof(
    fc.integer({ min: 0, max: 2 ** 20 }), // low memory
    fc.integer({ min: 0x7f00_0000_0, max: 0x7fff_ffff_f }), // the usual mmap area (page numbers)
    fc.integer({ min: 0, max: 2 ** 41 - 1 }), // anywhere below 2^53
  ).map((pn) => pn * 4096);
  fc.assert(
    fc.property(fc.array(fc.tuple(page, fc.nat(1 << 30)), { maxLength: 300 }), (ops) => {
      const index = new PageIndex(), want = new Map<number, number>();
      for (const [addr, slot] of ops) {
        assert.equal(index.get(addr), want.get(addr));
        index.set(addr, slot);
        want.set(addr, slot);
      }
      assert.equal(index.size, want.size);
      assert.deepEqual(
        [...index.keys()].sort((a, b) => a - b),
        [...want.keys()].sort((a, b) => a - b),
      );
      for (const [addr, slot] of want) assert.equal(index.get(addr), slot);
      assert.equal(index.has(2 ** 52), want.has(2 ** 52));
    }),
    { numRuns: 200 },
  );
});
