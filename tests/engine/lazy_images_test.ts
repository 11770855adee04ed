import assert from "node:assert/strict";
import {
  PE_LAZY,
  PE_PARENT,
  PE_PRESENT,
  VMA_ANON_PRIVATE,
  VMA_FILE_PRIVATE,
} from "../../src/criu/images/mod.ts";
import { coverOf, MAX_LAZY_RUN_PAGES, planProcess } from "../../src/engine/lazy_images.ts";

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

Deno.test("planProcess covers slots the dump left out: anonymous as zero pages, file pages as sent", () => {
  // 0x41000: the shared zero page (CRIU skips it), 0x51000: a clean page of a private file
  // mapping, 0x61000: outside every VMA (unmapped since) — that one ends the usable file.
  const cover = coverOf([
    { start: 0x40000, end: 0x48000, pgoff: 0, shmid: 0, flags: 0x22, status: VMA_ANON_PRIVATE },
    { start: 0x50000, end: 0x58000, pgoff: 0, shmid: 0, flags: 0x02, status: VMA_FILE_PRIVATE },
  ]);
  assert.equal(cover(0x41000), "zero");
  assert.equal(cover(0x51000), "keep");
  assert.equal(cover(0x61000), undefined);
  const plan = planProcess(
    {
      pagesId: 1,
      entries: [
        { vaddr: 0x40000, nrPages: 1, flags: LAZY },
        { vaddr: 0x42000, nrPages: 1, flags: LAZY },
        { vaddr: 0x52000, nrPages: 1, flags: PE_PRESENT },
        { vaddr: 0x62000, nrPages: 1, flags: LAZY },
      ],
    },
    [0x40000, 0x41000, 0x42000, 0x51000, 0x52000, 0x61000, 0x62000],
    cover,
  )!;
  assert.deepEqual(plan.entries, [
    { vaddr: 0x40000, nrPages: 1, flags: LAZY },
    { vaddr: 0x41000, nrPages: 1, flags: PE_PRESENT },
    { vaddr: 0x42000, nrPages: 1, flags: LAZY },
    { vaddr: 0x51000, nrPages: 2, flags: PE_PRESENT },
    { vaddr: 0x62000, nrPages: 1, flags: PE_PARENT },
  ]);
  assert.deepEqual(plan.zero, [0x41000]);
  assert.deepEqual(plan.parent, [0x62000]);
  assert.equal(plan.inFile, 5);
});

Deno.test("planProcess restores hot slots (patched again during pre-copy) eagerly, the rest lazily", () => {
  const pagemap = { pagesId: 1, entries: [{ vaddr: 0x40000, nrPages: 6, flags: LAZY }] };
  const plan = planProcess(pagemap, at(0x40000, 6), undefined, (slot) => slot === 1 || slot === 2)!;
  assert.deepEqual(plan.entries, [
    { vaddr: 0x40000, nrPages: 1, flags: LAZY },
    { vaddr: 0x41000, nrPages: 2, flags: PE_PRESENT },
    { vaddr: 0x43000, nrPages: 3, flags: LAZY },
  ]);
  assert.equal(plan.inFile, 6);
});

Deno.test("planProcess cuts lazy runs longer than CRIU's lazy-pages daemon takes (2 GiB overflows it)", () => {
  const n = 2 * MAX_LAZY_RUN_PAGES + 5;
  const pagemap = { pagesId: 1, entries: [{ vaddr: 0x100000, nrPages: n, flags: LAZY }] };
  const plan = planProcess(pagemap, at(0x100000, n))!;
  assert.deepEqual(plan.entries.map((e) => [e.nrPages, e.flags]), [
    [MAX_LAZY_RUN_PAGES, LAZY],
    [MAX_LAZY_RUN_PAGES, LAZY],
    [5, LAZY],
  ]);
  assert.equal(plan.entries[1].vaddr, 0x100000 + MAX_LAZY_RUN_PAGES * P);
});
