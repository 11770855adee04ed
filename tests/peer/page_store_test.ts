import assert from "node:assert/strict";
import { PeerError } from "../../src/peer/errors.ts";
import { pageHashes } from "../../src/native/page_hash.ts";
import { PageStore } from "../../src/peer/page_store.ts";
import { makeBatch } from "./support/nodes.ts";

function put(
  store: PageStore,
  pid: number,
  first: number,
  n: number,
  round: number,
  adopt = false,
) {
  const b = makeBatch(pid, first, n, round);
  store.putPages(pid, b.addresses, pageHashes(b.data), b.data, adopt);
  return b;
}

Deno.test("page store keeps pages in memory, spills beyond its limit, and reads both back", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const store = new PageStore(`${dir}/m1`, { memoryLimitBytes: 16 * 4096 });
    const a = put(store, 7, 0x10000, 16, 0); // fits in memory
    const b = put(store, 7, 0x100000, 32, 0); // spills
    const c = put(store, 9, 0x5000, 4, 0, true);
    assert.equal(store.pageCount, 52);
    assert.equal(store.spilledPages, 36); // memory is full: the last batch spills too
    assert.ok(Deno.statSync(`${dir}/m1/pages.spill`).size >= 32 * 4096);
    for (const batch of [a, b, c]) {
      batch.addresses.forEach((addr, i) => {
        assert.deepEqual(
          store.get(batch.pid, addr),
          batch.data.subarray(i * 4096, (i + 1) * 4096),
        );
        assert.deepEqual(
          store.hashOf(batch.pid, addr),
          pageHashes(batch.data.subarray(i * 4096, (i + 1) * 4096)),
        );
      });
    }
    assert.deepEqual(store.pids(), [7, 9]);
    const entries = store.entries(7);
    assert.equal(entries.length, 48);
    for (let i = 1; i < entries.length; i++) assert.ok(entries[i].addr > entries[i - 1].addr);
    assert.equal(store.get(7, 0xdead000), undefined);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("page store: a later round replaces pages, in memory and in the spill file", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const store = new PageStore(`${dir}/m`, { memoryLimitBytes: 8 * 4096 });
    put(store, 1, 0x1000, 8, 0, true);
    put(store, 1, 0x100000, 8, 0, true); // spilled
    const r1 = put(store, 1, 0x1000, 8, 1, true); // replaces the in-memory batch
    const r2 = put(store, 1, 0x100000, 8, 1, true); // memory is free again: moves to memory
    assert.equal(store.pageCount, 16);
    assert.deepEqual(store.get(1, 0x1000 + 3 * 4096), r1.data.subarray(3 * 4096, 4 * 4096));
    assert.deepEqual(store.get(1, 0x100000 + 7 * 4096), r2.data.subarray(7 * 4096));
    // The same address twice in one batch: the last copy wins.
    const twice = makeBatch(2, 0x2000, 2, 5);
    store.putPages(2, [0x2000, 0x2000], pageHashes(twice.data), twice.data, true);
    assert.deepEqual(store.get(2, 0x2000), twice.data.subarray(4096));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("page store writes image files only under its images directory", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const store = new PageStore(`${dir}/m`);
    store.writeFileChunk("core-1.img", 0, 10, new Uint8Array(6).fill(1));
    const f = store.writeFileChunk("core-1.img", 6, 10, new Uint8Array(4).fill(2));
    assert.equal(f.received, 10);
    assert.deepEqual(store.readFile("core-1.img"), new Uint8Array([1, 1, 1, 1, 1, 1, 2, 2, 2, 2]));
    for (const bad of ["../x", "a/b", "..", "/etc/passwd", ".x", "a..b", ""]) {
      assert.throws(() => store.writeFileChunk(bad, 0, 1, new Uint8Array(1)), PeerError, bad);
    }
    assert.throws(() => store.writeFileChunk("core-1.img", 0, 11, new Uint8Array(1)), PeerError);
    assert.deepEqual([...Deno.readDirSync(`${dir}/m/images`)].map((e) => e.name), ["core-1.img"]);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["m"]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("page store refuses data beyond its quota and removes its directory", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const store = new PageStore(`${dir}/m`, { quotaBytes: 8 * 4096 });
    put(store, 1, 0x1000, 8, 0);
    assert.throws(() => put(store, 1, 0x100000, 1, 0), /quota/);
    put(store, 1, 0x1000, 8, 1); // rewriting stored pages does not grow the store
    store.remove();
    assert.throws(() => Deno.statSync(`${dir}/m`), Deno.errors.NotFound);
    assert.throws(() => store.get(1, 0x1000), PeerError);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
