import assert from "node:assert/strict";
import { makePodmanPair, requireCriu42, waitLog } from "../support/podman.ts";
import { startMemcheckContainer } from "../support/podman_agents.ts";
import { memcheckImage, redisImage } from "../support/container_images.ts";
import { fillRedis, redisBenchmark, redisCli, startRedisContainer } from "../support/redis.ts";
import { requireCommand } from "../support/env.ts";
import { ship } from "./support.ts";
import {
  checkpointPodman,
  containerRestoreRequest,
  inspectPodmanContainer,
  listPodmanContainers,
  podmanStore,
  removeContainer,
  restoreContainer,
  resumeContainer,
} from "../../src/container/mod.ts";

const KEYS = 100_000;

Deno.test("a bridge-networked redis container with a published port and 100k keys moves under redis-benchmark (--tcp close): same IP and port, every key there", async () => {
  requireCommand("redis-cli", "redis-tools");
  requireCommand("redis-benchmark", "redis-tools");
  const criu = await requireCriu42();
  const pair = makePodmanPair(criu.path);
  const { a, b } = pair;
  const port = 20000 + (Deno.pid % 20000);
  let bench: Deno.ChildProcess | undefined;
  try {
    await redisImage(b);
    await startRedisContainer(a, "rd", port);
    await fillRedis(port, KEYS);
    assert.equal(await redisCli(port, ["DBSIZE"]), String(KEYS));
    const info = (await inspectPodmanContainer(a, "rd"))!;
    const ip = (await a.run(["inspect", "--format", "{{.NetworkSettings.IPAddress}}", "rd"]))
      .trim();
    bench = redisBenchmark(port);
    await new Promise((r) => setTimeout(r, 500));
    const work = Deno.makeTempDirSync({ dir: a.dir });
    const ck = await checkpointPodman(a, { id: info.id, workDir: work, tcpEstablished: true });
    const mig = Deno.makeTempDirSync({ dir: b.dir });
    const { store, files, request: shipped } = await ship(ck, mig);
    const request = {
      engine: "delta",
      ...shipped,
      tcpClose: true,
      container: containerRestoreRequest({ info, roots: await podmanStore(a), files }),
    };
    const nodesB = {
      podman: b,
      runc: { bin: "runc", root: b.runcRoot, env: {} },
      cgroupParent: b.cgroupParent,
    };
    const r = await restoreContainer({ migrationId: "rd1", dir: mig, store, request }, {
      nodes: nodesB,
    });
    assert.ok(r.ok, r.error);
    await removeContainer(a, info.id);
    resumeContainer(r.pid!);
    assert.equal(await redisCli(port, ["DBSIZE"]), String(KEYS));
    for (const i of [0, 4242, 99_999]) {
      assert.equal(await redisCli(port, ["GET", `key:${i}`]), `value-${i}`);
    }
    const ipB = (await b.run(["inspect", "--format", "{{.NetworkSettings.IPAddress}}", "rd"]))
      .trim();
    assert.equal(ipB, ip, "the container keeps its bridge address");
    assert.deepEqual((await listPodmanContainers(b)).map((c) => c.name), ["rd"]);
    assert.deepEqual(await listPodmanContainers(a, { all: true }), []);
  } finally {
    try {
      bench?.kill("SIGKILL");
      await bench?.status;
    } catch { /* gone */ }
    await pair.cleanup();
  }
});

Deno.test("a --network host container checkpoints and restores between two stores", async () => {
  const pair = makePodmanPair();
  const { a, b } = pair;
  try {
    await memcheckImage(b);
    await startMemcheckContainer(a, "mh", ["--mib", "16"], { network: "host" });
    const info = (await inspectPodmanContainer(a, "mh"))!;
    assert.equal(info.networkMode, "host");
    const work = Deno.makeTempDirSync({ dir: a.dir });
    const ck = await checkpointPodman(a, { id: info.id, workDir: work });
    const mig = Deno.makeTempDirSync({ dir: b.dir });
    const { store, files, request: shipped } = await ship(ck, mig);
    const request = {
      engine: "delta",
      ...shipped,
      container: containerRestoreRequest({ info, roots: await podmanStore(a), files }),
    };
    const r = await restoreContainer({ migrationId: "mh1", dir: mig, store, request }, {
      nodes: {
        podman: b,
        runc: { bin: "runc", root: b.runcRoot, env: {} },
        cgroupParent: b.cgroupParent,
      },
    });
    assert.ok(r.ok, r.error);
    await removeContainer(a, info.id);
    resumeContainer(r.pid!);
    await b.run(["kill", "--signal", "USR1", "mh"]);
    assert.equal(await waitLog(b, "mh", /^verify /), `verify ok ${16 * 256}`);
  } finally {
    await pair.cleanup();
  }
});
