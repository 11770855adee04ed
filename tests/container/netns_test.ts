import assert from "node:assert/strict";
import { waitLog } from "../support/podman.ts";
import { podmanAgents, startMemcheckContainer } from "../support/podman_agents.ts";
import { linkedNamespaces, netnsUnavailable } from "../support/netns.ts";
import {
  imageInfo,
  inspectPodmanContainer,
  listPodmanContainers,
} from "../../src/container/mod.ts";

const MIB = 24;
const MEMCHECK = ["--mib", String(MIB), "--write-pages", "40", "--hot-percent", "10"];

function lastTick(log: string): number {
  const line = log.trim().split("\n").filter((l) => l.startsWith("tick ")).at(-1) ?? "tick 0";
  return Number(line.split(" ")[1]);
}

Deno.test("podman containers migrate across two network namespaces over a 100 Mbit/s tbf link: memory intact, counter goes on, podman ps consistent, the image sent when missing and not when present", async () => {
  const why = netnsUnavailable();
  if (why) throw new Error(`netns test cannot run: ${why}`);
  const net = linkedNamespaces("ctn", "100mbit", 83);
  try {
    const t = await podmanAgents({
      prefixB: net.enter("b"),
      hostB: net.ipB,
      prefixA: net.enter("a"),
    });
    try {
      assert.notEqual(
        Deno.readLinkSync(`/proc/${t.agent.pid}/ns/net`),
        Deno.readLinkSync("/proc/self/ns/net"),
        "b's agent runs in its own network namespace",
      );
      await startMemcheckContainer(t.a, "mn1", MEMCHECK);
      const src = (await inspectPodmanContainer(t.a, "mn1"))!;
      assert.equal(await imageInfo(t.b, src.imageId!), undefined, "b starts without the image");
      const r = await t.migrate(["--container", "mn1", "--policy", "u2c"]);
      assert.equal(r.code, 0, r.stderr + r.stdout + t.agent.log().slice(-3000));
      const result = JSON.parse(r.stdout);
      assert.equal(result.ok, true);
      assert.equal(result.container.image_sent, true);
      assert.ok(result.verified_pages >= MIB * 256, `verified_pages ${result.verified_pages}`);
      // ≥ 24 MiB crossed a 100 Mbit/s link: at least ~2 s on the wire
      assert.ok(result.bytes_sent >= MIB * 2 ** 20, `bytes_sent ${result.bytes_sent}`);
      assert.ok(result.total_ms >= 1500, `total ${result.total_ms} ms is too fast for the link`);
      const dest = (await inspectPodmanContainer(t.b, "mn1"))!;
      assert.equal(dest.id, src.id);
      assert.equal(result.dest_pid, dest.initPid);
      assert.deepEqual((await listPodmanContainers(t.b)).map((c) => [c.name, c.state]), [[
        "mn1",
        "running",
      ]]);
      assert.deepEqual(await listPodmanContainers(t.a, { all: true }), [], "gone from a");
      const before = lastTick(await t.b.run(["logs", "mn1"]));
      await waitLog(t.b, "mn1", new RegExp(`^tick ${before + 10} `));
      await t.b.run(["kill", "--signal", "USR1", "mn1"]);
      assert.equal(await waitLog(t.b, "mn1", /^verify /), `verify ok ${MIB * 256}`);

      // the image is there now: a second container of it sends none
      await startMemcheckContainer(t.a, "mn2", MEMCHECK);
      const r2 = await t.migrate(["--container", "mn2", "--policy", "u2c"]);
      assert.equal(r2.code, 0, r2.stderr + r2.stdout + t.agent.log().slice(-2500));
      assert.equal(JSON.parse(r2.stdout).container.image_sent, false);
      await t.b.run(["kill", "--signal", "USR1", "mn2"]);
      assert.equal(await waitLog(t.b, "mn2", /^verify /), `verify ok ${MIB * 256}`);
      assert.deepEqual((await listPodmanContainers(t.b)).map((c) => c.name).sort(), [
        "mn1",
        "mn2",
      ]);
      assert.deepEqual(await listPodmanContainers(t.a, { all: true }), []);
    } finally {
      await t.cleanup();
    }
  } finally {
    net.cleanup();
  }
});
