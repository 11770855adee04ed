import assert from "node:assert/strict";
import { makePodmanPair, requireCriu42 } from "../support/podman.ts";
import { redisImage } from "../support/container_images.ts";
import { requireCommand } from "../support/env.ts";
import { makeNodes, u2cm } from "../engine/support/agents.ts";
import { retryHandshake } from "./support.ts";
import { inspectPodmanContainer, listPodmanContainers } from "../../src/container/mod.ts";

const KEYS = 100_000;

async function cli(port: number, args: string[], stdin?: string): Promise<string> {
  const child = new Deno.Command("redis-cli", {
    args: ["-p", String(port), ...args],
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  return new TextDecoder().decode((await child.output()).stdout).trim();
}

Deno.test("a redis container with 100k keys migrates between two agents under redis-benchmark (--tcp close): every key there, same address and port", async () => {
  requireCommand("redis-cli", "redis-tools");
  requireCommand("redis-benchmark", "redis-tools");
  const criu = await requireCriu42();
  const pair = makePodmanPair(criu.path);
  const { a, b } = pair;
  const nodes = await makeNodes();
  const agent = await nodes.startB(0, [], "127.0.0.1", {
    ...b.env,
    ...criu.env,
    U2CM_CGROUP_PARENT: b.cgroupParent,
  });
  const port = 20000 + (Deno.pid % 20000) + 7;
  let bench: Deno.ChildProcess | undefined;
  try {
    const img = await redisImage(a);
    await redisImage(b);
    await a.run([
      "run",
      "-d",
      "--name",
      "redis",
      "--cgroup-parent",
      a.cgroupParent,
      "-p",
      `127.0.0.1:${port}:6379`,
      img.name,
      "redis-server",
      "--save",
      "",
      "--appendonly",
      "no",
      "--protected-mode",
      "no",
    ]);
    for (let i = 0; i < 200 && (await cli(port, ["PING"])) !== "PONG"; i++) {
      await new Promise((r) => setTimeout(r, 25));
    }
    let pipe = "";
    for (let i = 0; i < KEYS; i++) pipe += `SET key:${i} value-${i}\r\n`;
    await cli(port, ["--pipe"], pipe);
    assert.equal(await cli(port, ["DBSIZE"]), String(KEYS));
    const src = (await inspectPodmanContainer(a, "redis"))!;
    bench = new Deno.Command("redis-benchmark", {
      args: ["-p", String(port), "-t", "get,ping", "-n", "100000000", "-c", "4", "-q"],
      stdout: "null",
      stderr: "null",
    }).spawn();
    await new Promise((r) => setTimeout(r, 500));
    const r = await retryHandshake(() =>
      u2cm([
        "migrate",
        "--container",
        "redis",
        "--to",
        "b",
        "--tcp",
        "close",
        "--format",
        "json",
        "--state-dir",
        nodes.a,
      ], { ...a.env, ...criu.env })
    );
    assert.equal(r.code, 0, r.stderr + r.stdout + agent.log().slice(-2000));
    const result = JSON.parse(r.stdout);
    assert.equal(result.container.image_sent, false);
    console.log(
      `redis container: downtime ${result.downtime_ms} ms, ${result.precopy_rounds} rounds`,
    );
    assert.equal(await cli(port, ["DBSIZE"]), String(KEYS));
    for (const i of [0, 4242, 99_999]) {
      assert.equal(await cli(port, ["GET", `key:${i}`]), `value-${i}`);
    }
    const dest = (await inspectPodmanContainer(b, "redis"))!;
    assert.equal(dest.id, src.id);
    assert.equal(result.dest_pid, dest.initPid);
    assert.deepEqual(dest.ports, src.ports, "the published port moved with it");
    assert.deepEqual((await listPodmanContainers(b)).map((c) => c.name), ["redis"]);
    assert.deepEqual(await listPodmanContainers(a, { all: true }), []);
  } finally {
    try {
      bench?.kill("SIGKILL");
      await bench?.status;
    } catch { /* gone */ }
    await agent.stop();
    nodes.cleanup();
    await pair.cleanup();
  }
});
