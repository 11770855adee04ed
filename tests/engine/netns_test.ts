import assert from "node:assert/strict";
import { waitGone } from "../../src/tracker/proc.ts";
import { requireCommand } from "../support/env.ts";
import { assertMemcheckHealthy, requireCriuBinary, startMemcheck } from "../criu/support.ts";
import { makeNodes, migrateTo, u2cm } from "./support/agents.ts";
import { runningCopies } from "./support/memcheck_pids.ts";
import { linkedNamespaces } from "../support/netns.ts";

for (const engine of ["delta", "hybrid"] as const) {
  Deno.test(`${engine} migration across two network namespaces over a 100 Mbit/s shaped link`, async () => {
    requireCriuBinary();
    requireCommand("ip", "iproute2");
    requireCommand("nsenter", "util-linux");
    const net = linkedNamespaces(
      engine === "delta" ? "nd" : "nh",
      "100mbit",
      engine === "delta" ? 77 : 78,
    );
    const nodes = await makeNodes();
    const agent = await nodes.startB(0, net.enter("b"), net.ipB);
    const w = await startMemcheck(
      ["--mib", "24", "--write-pages", "40", "--hot-percent", "10"],
      net.enter("a"),
    );
    let dest = 0;
    try {
      await w.waitFor(/^tick 5 /);
      const r = await u2cm(
        [
          ...migrateTo(w.pid, engine),
          "--policy",
          "u2c",
          "--page-server-address",
          net.ipA,
          "--format",
          "json",
          "--state-dir",
          nodes.a,
        ],
        {},
        net.enter("a"),
      );
      assert.equal(r.code, 0, r.stderr + r.stdout);
      const result = JSON.parse(r.stdout);
      assert.equal(result.engine, engine);
      dest = result.dest_pid;
      // ≥ 24 MiB crossed a 100 Mbit/s link: at least ~2 s of pre-copy.
      assert.ok(result.total_ms >= 1500, `total ${result.total_ms} ms is too fast for the link`);
      assert.ok(await waitGone(w.pid, 5000), "source still exists");
      assert.deepEqual(runningCopies(w.out), [dest]);
      assert.equal(
        Deno.readLinkSync(`/proc/${dest}/ns/net`),
        Deno.readLinkSync(`/proc/${agent.pid}/ns/net`),
        "the copy runs in the destination's network namespace",
      );
      await assertMemcheckHealthy(w, dest);
    } finally {
      for (const pid of runningCopies(w.out)) Deno.kill(pid, "SIGKILL");
      await w.stop();
      await agent.stop();
      nodes.cleanup();
      net.cleanup();
      Deno.removeSync(w.dir, { recursive: true });
    }
  });
}
