import assert from "node:assert/strict";
import { PE_LAZY, PE_PARENT, PE_PRESENT } from "../../src/criu/images/mod.ts";
import { SentRecorder, storedRuns } from "../../src/engine/freeze_sent.ts";
import { LocalChannel } from "../../src/engine/local_channel.ts";
import { pageHashes } from "../../src/native/page_hash.ts";

Deno.test("the freeze's recorder forwards every batch and reports the pages sent ascending, the last send winning", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "u2cm-sent-" });
  const inner = new LocalChannel({ dir, migrationId: "sent1" });
  try {
    const sent = new SentRecorder(inner);
    const page = (b: number) => new Uint8Array(4096).fill(b);
    const two = new Uint8Array([...page(1), ...page(2)]);
    await sent.sendPages({ pid: 5, addresses: Float64Array.from([0x3000, 0x1000]), data: two });
    await sent.sendPages({ pid: 5, addresses: Float64Array.from([0x3000]), data: page(3) });
    await sent.flush();
    const got = sent.of(5);
    assert.deepEqual(got.addresses, [0x1000, 0x3000]);
    assert.deepEqual(got.hashes, new Uint8Array([...pageHashes(page(2)), ...pageHashes(page(3))]));
    assert.deepEqual(sent.of(6), { addresses: [], hashes: new Uint8Array(0) });
    assert.ok(sent.bytesSent >= 3 * 4096);
  } finally {
    inner.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("the runs a final pagemap restores: present pages, merged, not a parent's", () => {
  const runs = storedRuns({
    pagesId: 1,
    entries: [
      { vaddr: 0x1000, nrPages: 2, flags: PE_PRESENT },
      { vaddr: 0x3000, nrPages: 1, flags: PE_PRESENT | PE_LAZY },
      { vaddr: 0x4000, nrPages: 1, flags: PE_PARENT },
      { vaddr: 0x8000, nrPages: 3, flags: PE_PRESENT },
    ],
  });
  assert.deepEqual(runs, [[0x1000, 3], [0x8000, 3]]);
});
