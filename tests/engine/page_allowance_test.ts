/**
 * The one allowance for legitimate differences (rseq area, dead stack below the stack pointer)
 * shared by the read-back and the post-copy checks.
 */
import assert from "node:assert/strict";
import {
  allowedAreas,
  areasOn,
  DEAD_STACK,
  maskedPageHash,
  RED_ZONE,
  sameOutside,
} from "../../src/engine/page_allowance.ts";
import { pageHashes } from "../../src/native/page_hash.ts";

Deno.test("a masked hash ignores exactly the allowed bytes; sameOutside agrees with it", () => {
  const addr = 0x7f0000;
  const areas = areasOn([[addr + 100, addr + 300], [addr + 8192, addr + 9000]], addr);
  assert.equal(areas.length, 1, "only the area touching the page");
  const a = new Uint8Array(4096).fill(3);
  const inside = a.slice();
  inside[150] = 0xff;
  const outside = a.slice();
  outside[300] = 0xff; // the area's end is exclusive
  assert.deepEqual(maskedPageHash(inside, addr, areas), maskedPageHash(a, addr, areas));
  assert.notDeepEqual(maskedPageHash(outside, addr, areas), maskedPageHash(a, addr, areas));
  assert.ok(sameOutside(inside, a, addr, areas));
  assert.ok(!sameOutside(outside, a, addr, areas));
  assert.notDeepEqual(maskedPageHash(a, addr, areas), pageHashes(a), "the masked bytes count");
  assert.equal(a[150], 3, "the page itself is not changed");
});

Deno.test("no core images: nothing is allowed; the dead stack ends past the red zone", () => {
  const dir = Deno.makeTempDirSync();
  try {
    assert.deepEqual(allowedAreas({ dir, pstree: [{ pid: 1, threads: [] }] }).get(1), []);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
  assert.equal(DEAD_STACK, 65536);
  assert.equal(RED_ZONE, 128);
});
