import assert from "node:assert/strict";
import { inCI } from "../support/env.ts";
import { spawnAgent } from "./support/agent_process.ts";
import { createNetnsPair, netnsUnavailable } from "../support/netns.ts";
import { makeNodePair } from "./support/nodes.ts";
import { spawnSender } from "./support/sender_process.ts";

const VERIFYING_AGENT = new URL("./support/verifying_agent.ts", import.meta.url).pathname;

/** Run `fn` with two namespaces, a node pair and a verifying agent in namespace B. */
async function inNetns(
  rate: string,
  fn: (ctx: {
    stateA: string;
    execA: string[];
    agentLogs: Record<string, unknown>[];
    link: (up: boolean) => Promise<void>;
  }) => Promise<void>,
): Promise<void> {
  const why = netnsUnavailable();
  if (why) {
    if (inCI()) throw new Error(`netns test cannot run: ${why}`);
    console.log(`skipping netns test: ${why}`);
    return;
  }
  const net = await createNetnsPair();
  const pair = await makeNodePair();
  try {
    await net.shape(rate);
    const agent = await spawnAgent(
      ["--listen", `${net.addrB}:7070`, "--state-dir", pair.b, "--resume-timeout", "60000"],
      { cmd: [...net.exec(net.nsB), Deno.execPath(), "run", "-A", VERIFYING_AGENT] },
    );
    try {
      pair.pinB(`${net.addrB}:7070`);
      await fn({
        stateA: pair.a,
        execA: net.exec(net.nsA),
        agentLogs: agent.logs,
        link: (up) => net.link(up),
      });
    } finally {
      await agent.stop();
    }
  } finally {
    await net.destroy();
    pair.cleanup();
  }
}

Deno.test("netns, tbf 100 Mbit: 48 MiB arrive intact between two namespaces", async () => {
  await inNetns("100mbit", async ({ stateA, execA }) => {
    const sender = spawnSender(["--state-dir", stateA, "--mib", "48"], execA);
    const { code, last } = await sender.finish(120_000);
    assert.equal(code, 0, JSON.stringify(last));
    assert.equal((last?.result as { ok: boolean }).ok, true);
    console.log(`100mbit: ${JSON.stringify({ transferMs: Math.round(Number(last?.transferMs)) })}`);
  });
});

Deno.test("netns, tbf 1 Gbit: 256 MiB arrive intact between two namespaces", async () => {
  await inNetns("1gbit", async ({ stateA, execA }) => {
    const sender = spawnSender(["--state-dir", stateA, "--mib", "256"], execA);
    const { code, last } = await sender.finish(180_000);
    assert.equal(code, 0, JSON.stringify(last));
    assert.equal((last?.result as { ok: boolean }).ok, true);
    console.log(`1gbit: ${JSON.stringify({ transferMs: Math.round(Number(last?.transferMs)) })}`);
  });
});

Deno.test("netns: the link goes down mid-transfer and comes back; the migration resumes intact", async () => {
  await inNetns("1gbit", async ({ stateA, execA, agentLogs, link }) => {
    const sender = spawnSender(
      ["--state-dir", stateA, "--mib", "160", "--dead-after", "2000", "--resume-timeout", "60000"],
      execA,
    );
    await sender.waitFor((l) => Number(l.sentMiB) >= 32);
    await link(false);
    await new Promise((r) => setTimeout(r, 5000)); // longer than the dead-link detection
    await link(true);
    const { code, last } = await sender.finish(180_000);
    assert.equal(code, 0, JSON.stringify(last));
    assert.equal((last?.result as { ok: boolean }).ok, true);
    assert.ok(agentLogs.some((l) => l.msg === "migration resumed"), JSON.stringify(agentLogs));
  });
});
