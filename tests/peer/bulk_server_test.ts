import assert from "node:assert/strict";
import { loadAead, TAG_BYTES } from "../../src/peer/aead.ts";
import { serveBulk } from "../../src/peer/bulk_server.ts";
import { BULK_PREAMBLE, CLIENT_LABEL, TOKEN_BYTES } from "../../src/peer/sealed_records.ts";

function aead() {
  const a = loadAead();
  if (!a) throw new Error("libcrypto.so.3 (OpenSSL 3) is needed for the sealed bulk stream");
  return a;
}

/** A sink that records what reached it. */
function sink() {
  const frames: Uint8Array[] = [];
  const failed = Promise.withResolvers<string>();
  const closed = Promise.withResolvers<void>();
  return {
    frames,
    failed: failed.promise,
    close: () => closed.resolve(),
    sink: {
      push: (f: Uint8Array) => frames.push(f.slice()) > 0,
      fail: failed.resolve,
      closed: closed.promise,
    },
  };
}

/** Records sealed in order under `key`: the empty proof, then one per payload. */
function records(key: Uint8Array, payloads: Uint8Array[]): Uint8Array[] {
  const s = aead().sealer(key, CLIENT_LABEL);
  const out = [new Uint8Array(0), ...payloads].map((p) => {
    const r = new Uint8Array(4 + p.length + TAG_BYTES);
    s.seal([p], r);
    return r;
  });
  s.close();
  return out;
}

async function connect(port: number, token: Uint8Array): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(new Uint8Array([...BULK_PREAMBLE, ...token]));
  return conn;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array) {
  for (let o = 0; o < bytes.length;) o += await conn.write(bytes.subarray(o));
}

const payloads = [1, 2, 3, 4].map((k) => new Uint8Array(100_000 + k).fill(k));

for (
  const [what, tamper] of [
    ["a flipped byte", (r: Uint8Array[]) => (r[3][5000] ^= 1, r)],
    ["a replayed record", (r: Uint8Array[]) => [r[0], r[1], r[2], r[2], r[3], r[4]]],
    ["a dropped record", (r: Uint8Array[]) => [r[0], r[1], r[2], r[4]]],
    ["a truncated record", (r: Uint8Array[]) => [r[0], r[1], r[2], r[3].subarray(0, 50_000)]],
  ] as const
) {
  Deno.test(`the bulk stream delivers the records before ${what}, then nothing, and fails the session`, async () => {
    const server = await serveBulk({
      hostname: "127.0.0.1",
      port: 0,
      aead: aead(),
      maxMessageBytes: 1 << 20,
    });
    const key = crypto.getRandomValues(new Uint8Array(32));
    const token = crypto.getRandomValues(new Uint8Array(TOKEN_BYTES));
    const s = sink();
    try {
      const attached = server.expect(token, key, s.sink);
      const conn = await connect(server.port, token);
      const recs = tamper(records(key, payloads));
      await writeAll(conn, recs[0]);
      assert.equal(await attached, true);
      for (const r of recs.slice(1)) await writeAll(conn, r);
      if (what === "a truncated record") conn.close();
      const why = await s.failed;
      assert.match(why, what === "a truncated record" ? /cut mid-record/ : /failed to open/);
      assert.deepEqual(s.frames.map((f) => f.length), [100_001, 100_002]);
      assert.ok(s.frames.every((f, i) => f.every((b) => b === i + 1)));
      if (what !== "a truncated record") {
        assert.equal(await conn.read(new Uint8Array(1)).catch(() => null), null, "still open");
        conn.close();
      }
    } finally {
      s.close();
      server.close();
    }
  });
}

Deno.test("a bulk stream under the wrong key, with an unknown token or a token used twice, never attaches", async () => {
  const server = await serveBulk({
    hostname: "127.0.0.1",
    port: 0,
    aead: aead(),
    maxMessageBytes: 1 << 20,
  });
  const key = crypto.getRandomValues(new Uint8Array(32));
  const token = crypto.getRandomValues(new Uint8Array(TOKEN_BYTES));
  const s = sink();
  const conns: Deno.Conn[] = [];
  try {
    // Wrong key: the proof record does not open.
    const attached = server.expect(token, key, s.sink);
    const wrong = await connect(server.port, token);
    conns.push(wrong);
    await writeAll(wrong, records(crypto.getRandomValues(new Uint8Array(32)), [])[0]);
    assert.equal(await attached, false);
    assert.equal(await wrong.read(new Uint8Array(1)).catch(() => null), null, "still open");
    // The token was spent on that connection: a second one with the right key gets nowhere.
    const again = await connect(server.port, token);
    conns.push(again);
    await writeAll(again, records(key, [payloads[0]])[0]);
    assert.equal(await again.read(new Uint8Array(1)).catch(() => null), null, "still open");
    // A token nobody registered.
    const stranger = await connect(
      server.port,
      crypto.getRandomValues(new Uint8Array(TOKEN_BYTES)),
    );
    conns.push(stranger);
    assert.equal(await stranger.read(new Uint8Array(1)).catch(() => null), null, "still open");
    assert.equal(s.frames.length, 0);
  } finally {
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    s.close();
    server.close();
  }
});
