import assert from "node:assert/strict";
import { PE_LAZY, PE_PARENT, PE_PRESENT } from "../../src/criu/images/mod.ts";
import { planProcess } from "../../src/engine/lazy_images.ts";

const P = 4096;
const LAZY = PE_PRESENT | PE_LAZY;
const at = (base: number, n: number) => Array.from({ length: n }, (_, i) => base + i * P);

Deno.test("planProcess reads runs in place when the slot file ascends like the pagemap", () => {
  const pagemap = {
    pagesId: 3,
    entries: [
      { vaddr: 0x10000, nrPages: 4, flags: PE_PRESENT },
      { vaddr: 0x40000, nrPages: 8, flags: LAZY },
    ],
  };
  const plan = planProcess(pagemap, [...at(0x10000, 4), ...at(0x40000, 8)])!;
  assert.deepEqual(plan.entries, pagemap.entries);
  assert.equal(plan.inFile, 12);
  assert.deepEqual(plan.parent, []);
});

Deno.test("planProcess sends pages missing from the file's prefix to the parent, eagerly", () => {
  // 0x41000 arrived out of order (deferred): it is not in the ascending prefix.
  const plan = planProcess(
    { pagesId: 1, entries: [{ vaddr: 0x40000, nrPages: 4, flags: LAZY }] },
    [0x40000, 0x42000, 0x43000],
  )!;
  assert.deepEqual(plan.entries, [
    { vaddr: 0x40000, nrPages: 1, flags: LAZY },
    { vaddr: 0x41000, nrPages: 1, flags: PE_PARENT },
    { vaddr: 0x42000, nrPages: 2, flags: LAZY },
  ]);
  assert.deepEqual(plan.parent, [0x41000]);
  assert.equal(plan.inFile, 3);
});

Deno.test("planProcess stops reading the file at a slot the final dump no longer has", () => {
  // Slot 1 holds 0x41000, which was unmapped before the freeze: the file's offsets past it
  // no longer match the pagemap, so 0x42000 and 0x43000 come from the parent.
  const plan = planProcess(
    {
      pagesId: 1,
      entries: [
        { vaddr: 0x40000, nrPages: 1, flags: LAZY },
        { vaddr: 0x42000, nrPages: 2, flags: LAZY },
      ],
    },
    [0x40000, 0x41000, 0x42000, 0x43000],
  )!;
  assert.deepEqual(plan.entries, [
    { vaddr: 0x40000, nrPages: 1, flags: LAZY },
    { vaddr: 0x42000, nrPages: 2, flags: PE_PARENT },
  ]);
  assert.deepEqual(plan.parent, [0x42000, 0x43000]);
  assert.equal(plan.inFile, 1);
});

Deno.test("planProcess refuses a pagemap that has a parent of its own", () => {
  assert.equal(
    planProcess({ pagesId: 1, entries: [{ vaddr: 0x1000, nrPages: 1, flags: PE_PARENT }] }, []),
    undefined,
  );
});
