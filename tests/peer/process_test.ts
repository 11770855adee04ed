import assert from "node:assert/strict";
import { spawnAgent } from "./support/agent_process.ts";
import { makeNodePair } from "./support/nodes.ts";
import { spawnSender } from "./support/sender_process.ts";

const VERIFYING_AGENT = new URL("./support/verifying_agent.ts", import.meta.url).pathname;

function migrationDirs(stateDir: string): string[] {
  try {
    return [...Deno.readDirSync(`${stateDir}/migrations`)].map((e) => e.name);
  } catch {
    return [];
  }
}

Deno.test("two processes on loopback move 256 MiB of pages and a file, verified byte for byte", async () => {
  const pair = await makeNodePair();
  const agent = await spawnAgent(["--listen", "127.0.0.1:0", "--state-dir", pair.b], {
    script: VERIFYING_AGENT,
  });
  try {
    pair.pinB(`127.0.0.1:${agent.port}`);
    const sender = spawnSender(["--state-dir", pair.a, "--mib", "256", "--id", "big"]);
    const { code, last } = await sender.finish();
    assert.equal(code, 0, JSON.stringify(last));
    assert.equal(last?.done, true);
    assert.deepEqual((last?.result as { ok: boolean }).ok, true, JSON.stringify(last));
    assert.ok(Number(last?.bytesSent) > 256 * 2 ** 20);
    await agent.waitFor((l) => l.msg === "restore finished" && l.ok === true);
  } finally {
    await agent.stop();
    pair.cleanup();
  }
});

Deno.test("killing the destination agent mid-transfer aborts the source cleanly", async () => {
  const pair = await makeNodePair();
  let agent = await spawnAgent(["--listen", "127.0.0.1:0", "--state-dir", pair.b]);
  const port = agent.port;
  try {
    pair.pinB(`127.0.0.1:${port}`);
    const sender = spawnSender([
      "--state-dir",
      pair.a,
      "--mib",
      "2000",
      "--id",
      "victim",
      "--resume-timeout",
      "8000",
    ]);
    await sender.waitFor((l) => Number(l.sentMiB) >= 32);
    assert.deepEqual(migrationDirs(pair.b), ["victim"]);
    await agent.stop("SIGKILL");
    // The agent comes back on the same port; its in-memory index is gone, so the resume is refused.
    agent = await spawnAgent(["--listen", `127.0.0.1:${port}`, "--state-dir", pair.b]);
    const { code, last } = await sender.finish(60_000);
    assert.equal(code, 2, JSON.stringify(last));
    assert.equal(last?.done, false);
    assert.equal(last?.code, "aborted", JSON.stringify(last));
    assert.ok(agent.logs.some((l) => l.msg === "removed a stale migration store"));
    assert.deepEqual(migrationDirs(pair.b), []);
  } finally {
    await agent.stop();
    pair.cleanup();
  }
});

Deno.test("an agent that stays dead makes the source give up within its resume timeout", async () => {
  const pair = await makeNodePair();
  const agent = await spawnAgent(["--listen", "127.0.0.1:0", "--state-dir", pair.b]);
  try {
    pair.pinB(`127.0.0.1:${agent.port}`);
    const sender = spawnSender([
      "--state-dir",
      pair.a,
      "--mib",
      "2000",
      "--resume-timeout",
      "2000",
    ]);
    await sender.waitFor((l) => Number(l.sentMiB) >= 16);
    await agent.stop("SIGKILL");
    const started = Date.now();
    const { code, last } = await sender.finish(30_000);
    assert.equal(code, 2, JSON.stringify(last));
    assert.equal(last?.code, "closed", JSON.stringify(last));
    assert.ok(Date.now() - started < 15_000);
  } finally {
    await agent.stop();
    pair.cleanup();
  }
});

Deno.test("killing the source mid-transfer makes the agent drop the migration after its timeout", async () => {
  const pair = await makeNodePair();
  const agent = await spawnAgent([
    "--listen",
    "127.0.0.1:0",
    "--state-dir",
    pair.b,
    "--resume-timeout",
    "1.5",
  ]);
  try {
    pair.pinB(`127.0.0.1:${agent.port}`);
    const sender = spawnSender(["--state-dir", pair.a, "--mib", "2000", "--id", "orphan"]);
    await sender.waitFor((l) => Number(l.sentMiB) >= 32);
    assert.deepEqual(migrationDirs(pair.b), ["orphan"]);
    sender.child.kill("SIGKILL");
    await sender.finish();
    await agent.waitFor((l) =>
      l.msg === "migration aborted" && /did not resume/.test(String(l.reason))
    );
    assert.deepEqual(migrationDirs(pair.b), []);
  } finally {
    await agent.stop();
    pair.cleanup();
  }
});
