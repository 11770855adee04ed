import assert from "node:assert/strict";
import { LedgerChannel, PageLedger } from "../../src/engine/ledger.ts";
import { LocalChannel } from "../../src/engine/local_channel.ts";
import { pageHashes } from "../../src/native/page_hash.ts";

Deno.test("the ledger remembers the hash of every page sent, newest send winning", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "u2cm-ledger-" });
  const inner = new LocalChannel({ dir, migrationId: "l1" });
  const ledger = new PageLedger();
  const channel = new LedgerChannel(inner, ledger);
  try {
    const a = new Uint8Array(2 * 4096).fill(1);
    const b = new Uint8Array(4096).fill(2);
    await channel.sendPages({ pid: 3, addresses: Float64Array.of(0x1000, 0x2000), data: a });
    await channel.sendPages({
      pid: 3,
      addresses: Float64Array.of(0x2000),
      data: b,
      hashes: pageHashes(b),
    });
    assert.equal(ledger.pages, 2);
    const held = ledger.held(3);
    assert.deepEqual(held.get(0x1000), pageHashes(a).subarray(0, 16));
    assert.deepEqual(held.get(0x2000), pageHashes(b));
    assert.equal(ledger.held(4).size, 0);
    assert.equal(channel.bytesSent, inner.bytesSent);
  } finally {
    inner.close();
    Deno.removeSync(dir, { recursive: true });
  }
});
