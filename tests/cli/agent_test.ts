import assert from "node:assert/strict";
import { ExitCode } from "../../src/cli/errors.ts";
import { makeNodePair } from "../peer/support/nodes.ts";
import { spawnAgent } from "../peer/support/agent_process.ts";
import { runU2cm as u2cm } from "../support/cli.ts";

Deno.test("u2cm agent serves pinned peers; u2cm peer check authenticates against it", async () => {
  const pair = await makeNodePair();
  const agent = await spawnAgent([
    "--listen",
    "127.0.0.1:0",
    "--state-dir",
    pair.b,
    "--log-level",
    "debug",
  ]);
  try {
    pair.pinB(`127.0.0.1:${agent.port}`);
    const r = await u2cm(["peer", "check", "b", "--state-dir", pair.a, "--format", "json"]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.peer, "b");
    assert.equal(out.capabilities.arch, Deno.build.arch);
    // Page and file frames would take the sealed bulk stream the agent announced.
    assert.equal(typeof out.capabilities.bulkPort, "number");
    assert.equal(out.sealed_bulk, true);
    await agent.waitFor((l) => l.msg === "peer authenticated" && l.peer === "a");
    // Every line the agent itself writes is a JSON record (Deno's own download notes are not ours).
    for (const l of agent.logs.filter((l) => l.msg !== "non-json stderr")) {
      assert.equal(typeof l.ts, "string");
      assert.ok(["error", "warn", "info", "debug"].includes(String(l.level)), JSON.stringify(l));
    }
    // An unpinned node is refused with the Peer exit code, and the agent logs why.
    const t = await u2cm(["init", "--state-dir", `${pair.root}/c`]);
    assert.equal(t.code, 0);
    const pinned = await u2cm([
      "peer",
      "add",
      "b",
      `127.0.0.1:${agent.port}`,
      pair.bKey,
      "--state-dir",
      `${pair.root}/c`,
    ]);
    assert.equal(pinned.code, 0, pinned.stderr);
    const refused = await u2cm(["peer", "check", "b", "--state-dir", `${pair.root}/c`]);
    assert.equal(refused.code, ExitCode.Peer, refused.stderr);
    await agent.waitFor((l) => l.msg === "authentication failed");
    // Unknown peers and unreachable agents have clear errors.
    const unknown = await u2cm(["peer", "check", "nope", "--state-dir", pair.a]);
    assert.equal(unknown.code, ExitCode.BadInput);
    assert.match(unknown.stderr, /no peer named 'nope'/);
  } finally {
    const status = await agent.stop();
    assert.equal(status.code, 0);
    pair.cleanup();
  }
});

Deno.test("u2cm agent --bulk-port off announces no bulk stream; peer check says so", async () => {
  const pair = await makeNodePair();
  const agent = await spawnAgent([
    "--listen",
    "127.0.0.1:0",
    "--state-dir",
    pair.b,
    "--bulk-port",
    "off",
  ]);
  try {
    pair.pinB(`127.0.0.1:${agent.port}`);
    const r = await u2cm(["peer", "check", "b", "--state-dir", pair.a, "--format", "json"]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.capabilities.bulkPort, undefined);
    assert.equal(out.sealed_bulk, false);
    const bad = await u2cm([
      "agent",
      "--listen",
      "127.0.0.1:0",
      "--state-dir",
      pair.b,
      "--bulk-port",
      "x",
    ]);
    assert.equal(bad.code, ExitCode.Usage, bad.stderr);
  } finally {
    await agent.stop();
    pair.cleanup();
  }
});

Deno.test("u2cm agent --config takes the bulk port from the file ('off' or a port); the flag wins", async () => {
  const pair = await makeNodePair();
  const config = `${pair.root}/config.json`;
  const write = (bulkPort: number | string) =>
    Deno.writeTextFileSync(
      config,
      JSON.stringify({
        version: 1,
        listen: "127.0.0.1:1", // the flag's port 0 wins
        stateDir: pair.b,
        metricsPort: 0,
        bulkPort,
      }),
    );
  const check = async (args: string[]) => {
    const agent = await spawnAgent(["--config", config, "--listen", "127.0.0.1:0", ...args]);
    try {
      pair.pinB(`127.0.0.1:${agent.port}`);
      const r = await u2cm(["peer", "check", "b", "--state-dir", pair.a, "--format", "json"]);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as { capabilities: { bulkPort?: number }; sealed_bulk: boolean };
    } finally {
      await agent.stop();
    }
  };
  try {
    write("off");
    const off = await check([]);
    assert.equal(off.capabilities.bulkPort, undefined);
    assert.equal(off.sealed_bulk, false);
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const free = (l.addr as Deno.NetAddr).port;
    l.close();
    write(free);
    const fixed = await check([]);
    assert.equal(fixed.capabilities.bulkPort, free);
    assert.equal(fixed.sealed_bulk, true);
    // The flag given on the command line wins over the file.
    const flag = await check(["--bulk-port", "off"]);
    assert.equal(flag.capabilities.bulkPort, undefined);
    write(70000);
    const bad = await u2cm(["agent", "--config", config]);
    assert.equal(bad.code, ExitCode.BadInput, bad.stderr);
    assert.match(bad.stderr, /bulkPort/);
  } finally {
    pair.cleanup();
  }
});

Deno.test("u2cm agent --bulk-advertise announces that port; a source that cannot reach it keeps frames on the WebSocket", async () => {
  const pair = await makeNodePair();
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closed = (l.addr as Deno.NetAddr).port;
  l.close();
  const agent = await spawnAgent([
    "--listen",
    "127.0.0.1:0",
    "--state-dir",
    pair.b,
    "--bulk-advertise",
    String(closed),
  ]);
  try {
    pair.pinB(`127.0.0.1:${agent.port}`);
    const r = await u2cm(["peer", "check", "b", "--state-dir", pair.a, "--format", "json"]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.capabilities.bulkPort, closed);
    assert.equal(out.sealed_bulk, false);
    for (
      const args of [["--bulk-advertise", "0"], ["--bulk-advertise", "1.5"], [
        "--bulk-port",
        "off",
        "--bulk-advertise",
        "7071",
      ]]
    ) {
      const bad = await u2cm(["agent", "--listen", "127.0.0.1:0", "--state-dir", pair.b, ...args]);
      assert.equal(bad.code, ExitCode.Usage, `${args.join(" ")}: ${bad.stderr}`);
    }
  } finally {
    await agent.stop();
    pair.cleanup();
  }
});

Deno.test("u2cm agent without an identity or with a bad address fails clearly", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    let r = await u2cm(["agent", "--listen", "127.0.0.1:0", "--state-dir", `${dir}/none`]);
    assert.equal(r.code, ExitCode.Environment);
    assert.match(r.stderr, /u2cm init --state-dir/);
    r = await u2cm(["agent", "--listen", "nope", "--state-dir", dir]);
    assert.equal(r.code, ExitCode.Usage);
    r = await u2cm(["agent", "--listen", "127.0.0.1:0", "--state-dir", dir, "--log-level", "loud"]);
    assert.equal(r.code, ExitCode.Usage);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("u2cm agent --config takes listen, state dir and metrics port from the file; flags win", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "u2cm-agent-config-" });
  const state = `${dir}/state`;
  await u2cm(["init", "--state-dir", state]);
  const metricsPort = 20000 + Math.floor(Math.random() * 20000);
  const config = `${dir}/config.json`;
  Deno.writeTextFileSync(
    config,
    JSON.stringify({ version: 1, listen: "127.0.0.1:1", stateDir: state, metricsPort }),
  );
  // --listen on the command line wins over the file's (unusable) port 1.
  const agent = await spawnAgent(["--config", config, "--listen", "127.0.0.1:0"]);
  try {
    assert.ok(agent.port > 1, `listening on ${agent.port}`);
    let text = "";
    for (let i = 0; i < 50 && !text.includes("u2cm_migrations_total"); i++) {
      try {
        text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      } catch { /* not up yet */ }
      if (!text) await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(text, /# TYPE u2cm_migrations_total counter/);
  } finally {
    await agent.stop();
  }
  Deno.writeTextFileSync(config, JSON.stringify({ version: 1, listen: "nope" }));
  const bad = await u2cm(["agent", "--config", config]);
  assert.equal(bad.code, ExitCode.BadInput);
  assert.match(bad.stderr, /listen/);
  Deno.removeSync(dir, { recursive: true });
});
