/**
 * The client's WebSocket link keeps every byte the agent sends, however it is cut into reads: the
 * agent's first message often arrives right behind the handshake answer, in a read of its own,
 * while the client is still checking that answer (an await: the Sec-WebSocket-Accept digest).
 * The server runs in a process of its own, so that its timing is not the client's.
 */
import assert from "node:assert/strict";
import { connectWsLink } from "../../src/peer/ws_client.ts";

/** The server: answers each upgrade, then sends "challenge N" after a gap of N×10 µs (spun). */
const SERVER = `
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
console.log(listener.addr.port);
for (let i = 0; ; i++) {
  const conn = await listener.accept();
  conn.setNoDelay(true);
  let head = "";
  const buf = new Uint8Array(4096);
  while (!head.includes("\\r\\n\\r\\n")) {
    const n = await conn.read(buf);
    if (n === null) break;
    head += new TextDecoder().decode(buf.subarray(0, n));
  }
  const key = /sec-websocket-key:\\s*(\\S+)/i.exec(head)?.[1] ?? "";
  const d = new Uint8Array(await crypto.subtle.digest("SHA-1", new TextEncoder().encode(key + GUID)));
  const accept = btoa(String.fromCharCode(...d));
  await conn.write(new TextEncoder().encode("HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\n" +
    "Connection: Upgrade\\r\\nSec-WebSocket-Accept: " + accept + "\\r\\n\\r\\n"));
  for (const until = performance.now() + (i * 10 % 2000) / 1000; performance.now() < until;) {}
  const body = new TextEncoder().encode("challenge " + i);
  await conn.write(new Uint8Array([0x81, body.length, ...body]));
  conn.read(buf).catch(() => null).finally(() => { try { conn.close(); } catch {} });
}
`;

Deno.test("the agent's first message is kept when it arrives in its own read right after the handshake", async () => {
  const server = new Deno.Command(Deno.execPath(), {
    args: ["eval", SERVER],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  try {
    const reader = server.stdout.getReader();
    const { value } = await reader.read();
    reader.releaseLock();
    const port = Number(new TextDecoder().decode(value).trim());
    let lost = 0;
    for (let i = 0; i < 200; i++) {
      const link = await connectWsLink({
        hostname: "127.0.0.1",
        port,
        timeoutMs: 5000,
        insecurePlainText: true,
      });
      try {
        if (await link.next(1000) !== `challenge ${i}`) lost++;
      } finally {
        link.close();
      }
    }
    assert.equal(lost, 0, `the client lost the agent's first message in ${lost} of 200 links`);
  } finally {
    server.kill("SIGKILL");
    await server.status;
    await server.stdout.cancel().catch(() => {});
  }
});
