import assert from "node:assert/strict";
import { inCI } from "../support/env.ts";
import { spawnAgent } from "./support/agent_process.ts";
import { createNetnsPair, netnsUnavailable } from "../support/netns.ts";
import { makeNodePair } from "./support/nodes.ts";
import { spawnSender } from "./support/sender_process.ts";

const VERIFYING_AGENT = new URL("./support/verifying_agent.ts", import.meta.url).pathname;

Deno.test("netns, tbf 100 Mbit: compression auto turns on for text pages; they arrive intact", async () => {
  const why = netnsUnavailable();
  if (why) {
    if (inCI()) throw new Error(`netns test cannot run: ${why}`);
    console.log(`skipping netns test: ${why}`);
    return;
  }
  const net = await createNetnsPair("z");
  const pair = await makeNodePair();
  try {
    await net.shape("100mbit");
    const agent = await spawnAgent(
      ["--listen", `${net.addrB}:7070`, "--state-dir", pair.b],
      { cmd: [...net.exec(net.nsB), Deno.execPath(), "run", "-A", VERIFYING_AGENT] },
    );
    try {
      pair.pinB(`${net.addrB}:7070`);
      const sender = spawnSender(
        ["--state-dir", pair.a, "--mib", "64", "--compress", "auto", "--content", "text"],
        net.exec(net.nsA),
      );
      const { code, last } = await sender.finish(120_000);
      assert.equal(code, 0, JSON.stringify(last));
      assert.equal((last?.result as { ok: boolean }).ok, true, JSON.stringify(last));
      const c = last?.compression as { active: boolean; packedFrames: number; linkBps: number };
      assert.equal(c.active, true, JSON.stringify(c));
      assert.ok(c.packedFrames >= 32, JSON.stringify(c)); // of 64 batches
      assert.ok(c.linkBps > 0 && c.linkBps < 20e6, JSON.stringify(c)); // 100 Mbit = 12.5 MB/s
      const raw = 64 * 2 ** 20 + (5 << 20);
      assert.ok(Number(last?.bytesSent) < 0.8 * raw, `sent ${last?.bytesSent} of ${raw}`);
      console.log(`100mbit auto: ${JSON.stringify({ ms: last?.transferMs, c })}`);
    } finally {
      await agent.stop();
    }
  } finally {
    await net.destroy();
    pair.cleanup();
  }
});
