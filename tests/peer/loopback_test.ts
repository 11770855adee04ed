import assert from "node:assert/strict";
import { spawnAgent } from "./support/agent_process.ts";
import { makeNodePair } from "./support/nodes.ts";
import { spawnSender } from "./support/sender_process.ts";

const VERIFYING_AGENT = new URL("./support/verifying_agent.ts", import.meta.url).pathname;

/** Generous bounds: under qemu-user every process start and every TLS handshake is slow. */
const SLOW_MS = 300_000;

// Small enough for the arm64 lane, where both processes run under qemu-user: there, making 8 MiB
// of text pages took 50 s and the default 5 MiB file 13 s, on each side.
Deno.test("two processes on loopback move LZ4-compressed pages and a file over TLS, verified", async () => {
  const pair = await makeNodePair();
  const agent = await spawnAgent(["--listen", "127.0.0.1:0", "--state-dir", pair.b], {
    script: VERIFYING_AGENT,
    startTimeoutMs: SLOW_MS,
  });
  try {
    pair.pinB(`127.0.0.1:${agent.port}`);
    const sender = spawnSender([
      "--state-dir",
      pair.a,
      "--mib",
      "2",
      "--file-kib",
      "512",
      "--id",
      "lane",
      "--compress",
      "on",
      "--content",
      "text",
      // The handshake, each answer and the agent's silence are bounded by 10, 10 and 8 s by
      // default: too tight when both processes run under qemu-user on a loaded machine.
      "--timeout",
      String(SLOW_MS),
      "--dead-after",
      "60000",
    ]);
    const { code, last } = await sender.finish(SLOW_MS);
    assert.equal(code, 0, JSON.stringify(last));
    assert.equal((last?.result as { ok: boolean }).ok, true, JSON.stringify(last));
    const c = last?.compression as { packedFrames: number };
    assert.ok(c.packedFrames >= 2, JSON.stringify(c)); // of 2 page batches and the file
    const raw = 2 * 2 ** 20 + (512 << 10);
    assert.ok(Number(last?.bytesSent) < 0.8 * raw, `sent ${last?.bytesSent} of ${raw}`);
    await agent.waitFor((l) => l.msg === "restore finished" && l.ok === true, SLOW_MS);
  } finally {
    await agent.stop();
    pair.cleanup();
  }
});
