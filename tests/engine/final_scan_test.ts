import assert from "node:assert/strict";
import { heldIndex, scanChanged } from "../../src/engine/final_scan.ts";
import { pageHashes } from "../../src/native/page_hash.ts";

const P = 4096;

Deno.test("scanChanged finds exactly the pages that differ from the held hashes, on every worker", async () => {
  // 20 000 pages of this process's own memory (more than one scan chunk), page-aligned.
  const n = 20_000;
  const raw = new Uint8Array((n + 1) * P);
  const base = Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(raw)));
  const skew = (P - (base % P)) % P;
  const mem = raw.subarray(skew, skew + n * P);
  const vaddr = base + skew;
  for (let i = 0; i < n; i++) mem[i * P] = i & 0xff, mem[i * P + 1] = i >> 8;
  const hashes = pageHashes(mem);
  const held = new Map<number, Uint8Array>();
  for (let i = 0; i < n; i++) {
    if (i === 500) continue; // never sent
    held.set(vaddr + i * P, hashes.slice(i * 16, i * 16 + 16));
  }
  mem[7 * P + 100] ^= 1;
  mem[9_000 * P] ^= 1;
  mem[19_999 * P + 4095] ^= 1;
  const changed = await scanChanged(Deno.pid, [{ vaddr, nrPages: n }], heldIndex(held), {
    workers: 2,
  });
  assert.deepEqual(changed.map((a) => (a - vaddr) / P).sort((a, b) => a - b), [
    7,
    500,
    9_000,
    19_999,
  ]);
});
