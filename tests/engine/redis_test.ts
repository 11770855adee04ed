import assert from "node:assert/strict";
import { launchIsolated } from "../../src/engine/launch.ts";
import { cacheDir } from "../../src/native/build.ts";
import { isAlive, waitGone } from "../../src/tracker/proc.ts";
import { requireCommand } from "../support/env.ts";
import { requireCriuBinary } from "../criu/support.ts";
import { makeNodes, migrateTo, u2cm } from "./support/agents.ts";
import { bridgedNamespaces } from "../support/netns.ts";

const KEYS = 100_000;

/**
 * CRIU 4.1.1 cannot dump TCP sockets on Linux ≥ 6.16 (SO_PASSCRED): use a private CRIU 4.2 from
 * Debian sid, provisioned by the same `u2cm doctor --fix`, in its own prefix.
 */
async function criu42(): Promise<Record<string, string>> {
  const env = { U2CM_CRIU_PREFIX: `${cacheDir()}/criu-sid` };
  const r = await u2cm(["doctor", "--fix", "--criu-suite", "sid", "--format", "json"], env);
  assert.equal(r.code, 0, `provisioning CRIU 4.2 failed: ${r.stderr}`);
  assert.match(JSON.parse(r.stdout).criu.version, /^4\.([2-9]|\d\d)/);
  return env;
}

/** PING the service every few ms, reconnecting on failure; tracks the longest silence. */
function startProbe(host: string, port: number) {
  let stop = false;
  let last = performance.now();
  let longest = 0;
  let pongs = 0;
  const done = (async () => {
    const buf = new Uint8Array(64);
    for (let i = 0; i < 1_000_000 && !stop; i++) {
      let conn: Deno.TcpConn | undefined;
      try {
        conn = await Deno.connect({ hostname: host, port });
        for (let j = 0; j < 1_000_000 && !stop; j++) {
          await conn.write(new TextEncoder().encode("PING\r\n"));
          const n = await conn.read(buf);
          if (!n) break;
          const now = performance.now();
          longest = Math.max(longest, now - last);
          last = now;
          pongs++;
          await new Promise((r) => setTimeout(r, 5));
        }
      } catch { /* refused, reset, unreachable: retry */ }
      try {
        conn?.close();
      } catch { /* closed */ }
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  return {
    pongs: () => pongs,
    stop: async () => {
      stop = true;
      await done;
      return longest;
    },
  };
}

async function cli(host: string, args: string[], input?: string): Promise<string> {
  const child = new Deno.Command("redis-cli", {
    args: ["-h", host, ...args],
    stdin: input === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (input !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(input));
    await w.close();
  }
  const out = await child.output();
  return new TextDecoder().decode(out.stdout).trim();
}

Deno.test("redis with 100k keys migrates under redis-benchmark load: every key present", async () => {
  requireCriuBinary();
  const redis = requireCommand("redis-server", "redis-server");
  requireCommand("redis-benchmark", "redis-tools");
  const env = await criu42();
  const net = bridgedNamespaces("rd", 88);
  const nodes = await makeNodes();
  const agent = await nodes.startB(0, net.enter("b"), net.ipB, env);
  const dir = Deno.makeTempDirSync({ prefix: "u2cm-redis-" });
  const server = await launchIsolated({
    cmd: redis,
    args: [
      "--port",
      "6379",
      "--bind",
      "0.0.0.0",
      "--protected-mode",
      "no",
      "--save",
      "",
      "--appendonly",
      "no",
    ],
    stdout: `${dir}/redis.log`,
    cwd: dir,
    prefix: net.enter("a"),
  });
  let bench: Deno.ChildProcess | undefined;
  let dest = 0;
  try {
    for (let i = 0; i < 200 && (await cli(net.vip, ["PING"])) !== "PONG"; i++) {
      await new Promise((r) => setTimeout(r, 25));
    }
    let pipe = "";
    for (let i = 0; i < KEYS; i++) pipe += `SET key:${i} value-${i}\r\n`;
    await cli(net.vip, ["--pipe"], pipe);
    assert.equal(await cli(net.vip, ["DBSIZE"]), String(KEYS));
    bench = new Deno.Command("redis-benchmark", {
      args: ["-h", net.vip, "-t", "get,ping", "-n", "100000000", "-c", "4", "-q"],
      stdout: "null",
      stderr: "null",
    }).spawn();
    const probe = startProbe(net.vip, 6379);
    await new Promise((r) => setTimeout(r, 500));
    const r = await u2cm(
      [
        ...migrateTo(server.pid),
        "--policy",
        "u2c",
        "--tcp",
        "close",
        "--format",
        "json",
        "--state-dir",
        nodes.a,
      ],
      env,
      net.enter("a"),
    );
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const result = JSON.parse(r.stdout);
    dest = result.dest_pid;
    // The default freeze (scan-and-copy, whose lazy dump CRIU 4.2 ends on its own page-server
    // format), verified against the manifest.
    assert.ok(result.phases.scan_ms !== undefined, `not scan-and-copy: ${r.stdout}`);
    assert.ok(result.ok && result.verified_pages > 0, r.stdout);
    net.moveVip("b");
    const pongsAtMove = probe.pongs();
    for (let i = 0; i < 400 && probe.pongs() <= pongsAtMove + 5; i++) {
      await new Promise((r) => setTimeout(r, 25));
    }
    const unavailableMs = await probe.stop();
    console.log(
      `redis: downtime ${result.downtime_ms} ms (freeze → restored), client-observed ` +
        `unavailability ${Math.round(unavailableMs)} ms (includes moving the service address)`,
    );
    assert.ok(probe.pongs() > pongsAtMove, "the client never reached the migrated redis");
    assert.ok(await waitGone(server.pid, 5000), "source redis still exists");
    assert.ok(isAlive(dest));
    assert.equal(await cli(net.vip, ["DBSIZE"]), String(KEYS));
    for (const i of [0, 4242, 99_999]) {
      assert.equal(await cli(net.vip, ["GET", `key:${i}`]), `value-${i}`);
    }
  } finally {
    try {
      bench?.kill("SIGKILL");
      await bench?.status;
    } catch { /* gone */ }
    if (dest && isAlive(dest)) Deno.kill(dest, "SIGKILL");
    await server.stop();
    await agent.stop();
    nodes.cleanup();
    net.cleanup();
    Deno.removeSync(dir, { recursive: true });
  }
});
