import assert from "node:assert/strict";
import fc from "fast-check";
import {
  buildPagesFile,
  decodeInventory,
  decodeMessage,
  decodePagemap,
  decodePstree,
  encodeInventory,
  encodeMessage,
  encodePagemap,
  ImageFormatError,
  Magic,
  MissingPageError,
  PAGE_SIZE,
  type PbField,
  PE_PRESENT,
  readDumpDir,
  readImage,
  storedAddresses,
  writeImage,
} from "../../src/criu/images/mod.ts";
import { criuDump } from "../../src/criu/run.ts";
import { requireCriuBinary, startMemcheck } from "./support.ts";

Deno.test("protobuf fields survive encode → decode, including 64-bit varints and bytes", () => {
  const field = fc.oneof(
    fc.record({
      field: fc.integer({ min: 1, max: 1000 }),
      wire: fc.constant(0 as const),
      value: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    }),
    fc.record({
      field: fc.integer({ min: 1, max: 1000 }),
      wire: fc.constant(2 as const),
      value: fc.uint8Array({ maxLength: 40 }),
    }),
    fc.record({
      field: fc.integer({ min: 1, max: 1000 }),
      wire: fc.constant(5 as const),
      value: fc.integer({ min: 0, max: 0xffffffff }),
    }),
  );
  fc.assert(
    fc.property(fc.array(field, { maxLength: 20 }), (fields) => {
      const plain = fields.map((f) => ({ ...f })) as PbField[];
      assert.deepEqual(decodeMessage(encodeMessage(plain)), plain);
    }),
  );
});

Deno.test("truncated protobuf and image bytes are rejected with the offset", () => {
  const msg = encodeMessage([{ field: 2, wire: 2, value: new Uint8Array(10) }]);
  assert.throws(() => decodeMessage(msg.subarray(0, 5)), /runs past the message end/);
  const img = writeImage({ kind: "common", magic: Magic.PAGEMAP, entries: [msg] });
  assert.throws(() => readImage(img.subarray(0, img.length - 1)), ImageFormatError);
  assert.throws(() => decodePstree(img), /magic 0x56084025, expected 0x50273030/);
});

Deno.test("a real dump decodes: pstree pids are namespace pids, pages match the stopped tree", async () => {
  requireCriuBinary();
  // Pinned to one CPU: the kernel rewrites the rseq cpu_id fields in the task's TLS whenever it
  // runs on another CPU, which it briefly does while CRIU cures and detaches after the dump.
  const w = await startMemcheck(["--mib", "8", "--write-pages", "16"], ["taskset", "-c", "0"]);
  const dir = Deno.makeTempDirSync({ prefix: "u2cm-img-" });
  try {
    await criuDump({ pid: w.pid, dir });
    const dump = await readDumpDir(dir);
    assert.equal(dump.inventory.imgVersion, 2);
    assert.equal(dump.pstree.length, 1);
    assert.equal(dump.pstree[0].pid, 1, "the root of its own pid namespace is pid 1");
    assert.deepEqual(dump.pstree[0].threads, [1]);
    const mem = dump.memory[0];
    assert.equal(mem.pagemapFile, "pagemap-1.img");
    // 8 MiB of memcheck pages plus the rest of the process.
    assert.ok(mem.addresses.length >= 2048, `only ${mem.addresses.length} pages`);

    // Byte-exact re-encoding of the images u2cm may rewrite.
    const pagemapBytes = Deno.readFileSync(`${dir}/${mem.pagemapFile}`);
    assert.deepEqual(encodePagemap(decodePagemap(pagemapBytes)), pagemapBytes);
    const invBytes = Deno.readFileSync(`${dir}/inventory.img`);
    assert.deepEqual(encodeInventory(decodeInventory(invBytes)), invBytes);

    // Every stored page equals the stopped process's memory at its address.
    const pages = Deno.readFileSync(`${dir}/${mem.pagesFile}`);
    const procMem = Deno.openSync(`/proc/${w.pid}/mem`);
    const live = new Uint8Array(PAGE_SIZE);
    let compared = 0;
    try {
      mem.addresses.forEach((addr, i) => {
        procMem.seekSync(addr, Deno.SeekMode.Start);
        if (procMem.readSync(live) !== PAGE_SIZE) return; // e.g. [vsyscall]-like holes
        assert.deepEqual(
          pages.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE),
          live,
          `page 0x${addr.toString(16)}`,
        );
        compared++;
      });
    } finally {
      procMem.close();
    }
    assert.ok(compared >= 2048);

    // Rebuilding the pages file from pages keyed by address reproduces it exactly.
    const byAddr = new Map(
      mem.addresses.map((a, i) => [a, pages.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE)]),
    );
    assert.deepEqual(buildPagesFile(1, mem.pagemap, (a) => byAddr.get(a)), pages);
    byAddr.delete(mem.addresses[5]);
    assert.throws(() => buildPagesFile(1, mem.pagemap, (a) => byAddr.get(a)), MissingPageError);
  } finally {
    await w.stop();
    Deno.removeSync(dir, { recursive: true });
    Deno.removeSync(w.dir, { recursive: true });
  }
});

Deno.test("storedAddresses skips parent and lazy runs as CRIU's restore does", () => {
  const pm = {
    pagesId: 3,
    entries: [
      { vaddr: 0x1000, nrPages: 2, flags: PE_PRESENT },
      { vaddr: 0x8000, nrPages: 1, flags: 1 }, // PE_PARENT
      { vaddr: 0x10000, nrPages: 2, flags: PE_PRESENT | 2 }, // lazy-capable
    ],
  };
  assert.deepEqual(storedAddresses(pm), [0x1000, 0x2000, 0x10000, 0x11000]);
  assert.deepEqual(storedAddresses(pm, true), [0x1000, 0x2000]);
  assert.deepEqual(decodePagemap(encodePagemap(pm)), pm);
});

Deno.test("CRIU 4.2 pagemaps (64-bit pages, field 5) decode and re-encode byte for byte", () => {
  // An entry as CRIU 4.2.1 writes it: vaddr, nr_pages 0, flags PE_PRESENT|PE_LAZY, pages 1021.
  const entry = encodeMessage([
    { field: 1, wire: 0, value: 0x7ff0_0000_0000n },
    { field: 2, wire: 0, value: 0n },
    { field: 4, wire: 0, value: 6n },
    { field: 5, wire: 0, value: 1021n },
  ]);
  const head = encodeMessage([{ field: 1, wire: 0, value: 1n }]);
  const bytes = writeImage({ kind: "common", magic: Magic.PAGEMAP, entries: [head, entry] });
  const pm = decodePagemap(bytes);
  assert.equal(pm.widePages, true);
  assert.deepEqual(pm.entries, [{ vaddr: 0x7ff0_0000_0000, nrPages: 1021, flags: 6 }]);
  assert.deepEqual(encodePagemap(pm), bytes);
  assert.equal(storedAddresses(pm).length, 1021);
});
