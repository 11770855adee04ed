import assert from "node:assert/strict";
import { loadAead } from "../../src/peer/aead.ts";
import { CLIENT_LABEL, SealedWriter } from "../../src/peer/sealed_records.ts";

Deno.test("a bulk writer whose peer went away reports the failure once, without an unhandled rejection", async () => {
  const aead = loadAead();
  if (!aead) throw new Error("libcrypto.so.3 (OpenSSL 3) is needed for the sealed bulk stream");
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept().then((c) => c.close());
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  await accepted;
  const errors: string[] = [];
  const writer = new SealedWriter(
    conn,
    aead.sealer(crypto.getRandomValues(new Uint8Array(32)), CLIENT_LABEL),
    (why) => errors.push(why),
  );
  try {
    // Records queue up, so a write fails while the next record is being sealed.
    const record = new Uint8Array(1 << 20);
    for (let round = 0; round < 8 && !writer.error; round++) {
      for (let i = 0; i < 16; i++) writer.write(record);
      await writer.drained(0);
    }
    assert.match(writer.error ?? "", /bulk write failed/);
    assert.equal(errors.length, 1, errors.join("; "));
  } finally {
    writer.close();
    try {
      conn.close();
    } catch { /* closed */ }
    listener.close();
  }
});
