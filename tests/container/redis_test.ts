import assert from "node:assert/strict";
import { requireCriu42 } from "../support/podman.ts";
import { requireCommand } from "../support/env.ts";
import { podmanAgents } from "../support/podman_agents.ts";
import { fillRedis, redisBenchmark, redisCli, startRedisContainer } from "../support/redis.ts";
import { redisImage } from "../support/container_images.ts";
import { inspectPodmanContainer, listPodmanContainers } from "../../src/container/mod.ts";

const KEYS = 100_000;

Deno.test("a redis container with 100k keys migrates between two agents under redis-benchmark (--tcp close): every key there, same address and port", async () => {
  requireCommand("redis-cli", "redis-tools");
  requireCommand("redis-benchmark", "redis-tools");
  const t = await podmanAgents({ criu: await requireCriu42() });
  const { a, b } = t;
  const port = 20000 + (Deno.pid % 20000) + 7;
  let bench: Deno.ChildProcess | undefined;
  try {
    await redisImage(b);
    await startRedisContainer(a, "redis", port);
    await fillRedis(port, KEYS);
    assert.equal(await redisCli(port, ["DBSIZE"]), String(KEYS));
    const src = (await inspectPodmanContainer(a, "redis"))!;
    bench = redisBenchmark(port);
    await new Promise((r) => setTimeout(r, 500));
    const r = await t.migrate(["--container", "redis", "--tcp", "close"]);
    assert.equal(r.code, 0, r.stderr + r.stdout + t.agent.log().slice(-2000));
    const result = JSON.parse(r.stdout);
    assert.equal(result.container.image_sent, false);
    assert.ok(result.verified_pages > 0, "verified against the manifest");
    console.log(
      `redis container: downtime ${result.downtime_ms} ms, ${result.precopy_rounds} rounds`,
    );
    assert.equal(await redisCli(port, ["DBSIZE"]), String(KEYS));
    for (const i of [0, 4242, 99_999]) {
      assert.equal(await redisCli(port, ["GET", `key:${i}`]), `value-${i}`);
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
    await t.cleanup();
  }
});
