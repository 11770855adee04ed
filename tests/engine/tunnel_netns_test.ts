import assert from "node:assert/strict";
import { waitGone } from "../../src/tracker/proc.ts";
import { requireCommand } from "../support/env.ts";
import { assertMemcheckHealthy, requireCriuBinary, startMemcheck } from "../criu/support.ts";
import { makeNodes, migrateTo, u2cm } from "./support/agents.ts";
import { runningCopies } from "./support/memcheck_pids.ts";
import { linkedNamespaces, sh } from "../support/netns.ts";

/** TCP connections in namespace `ns` between `ipA` and `ipB`, as "local>peer" strings. */
function crossConnections(ns: string, ipA: string, ipB: string): string[] {
  const out = sh(["ip", "netns", "exec", ns, "ss", "-tanH"]);
  const found: string[] = [];
  for (const line of out.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5 || f[0] === "LISTEN") continue;
    const [local, peer] = [f[3], f[4]];
    const host = (a: string) => a.slice(0, a.lastIndexOf(":")).replace(/^\[|\]$/g, "");
    const ends = [host(local), host(peer)];
    if (ends.includes(ipA) && ends.includes(ipB)) found.push(`${f[0]} ${local}>${peer}`);
  }
  return found;
}

/** The drain's idle limit for these runs (`U2CM_DRAIN_IDLE_MS`), well below their drains. */
const DRAIN_IDLE_MS = 300;

for (const engine of ["lazy", "hybrid"] as const) {
  Deno.test(`${engine}: post-copy pages cross two namespaces only inside the peer channel`, async () => {
    requireCriuBinary();
    requireCommand("ip", "iproute2");
    requireCommand("ss", "iproute2");
    requireCommand("nsenter", "util-linux");
    // Tags and subnets no other test uses (netns tests of several suites run at once).
    const net = linkedNamespaces(
      engine === "lazy" ? "chtl" : "chth",
      "1gbit",
      engine === "lazy" ? 181 : 182,
    );
    const nodes = await makeNodes();
    const agent = await nodes.startB(0, net.enter("b"), net.ipB);
    const w = await startMemcheck(
      ["--mib", "64", "--write-pages", "40", "--hot-percent", "10"],
      net.enter("a"),
    );
    // Sample every TCP connection between the two namespaces for the whole migration.
    const seen = new Set<string>();
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        for (const ns of [net.a, net.b]) {
          for (const c of crossConnections(ns, net.ipA, net.ipB)) seen.add(`${ns}: ${c}`);
        }
        await new Promise((r) => setTimeout(r, 15));
      }
    })();
    let dest = 0;
    let agentLog = "";
    try {
      await w.waitFor(/^tick 5 /);
      const r = await u2cm(
        [
          ...migrateTo(w.pid, engine),
          // hybrid: pre-copy rounds, then post-copy (a 1 ms budget no stop-and-copy meets).
          ...(engine === "lazy"
            ? ["--policy", "post-copy"]
            : ["--policy", "hybrid", "--max-downtime", "1"]),
          // The page server used to listen here for the destination to connect: no more.
          "--page-server-address",
          net.ipA,
          "--format",
          "json",
          "--state-dir",
          nodes.a,
        ],
        // A drain limit far below the drain itself: while pages move, the drain goes on.
        { U2CM_DRAIN_IDLE_MS: String(DRAIN_IDLE_MS) },
        net.enter("a"),
      );
      assert.equal(r.code, 0, r.stderr + r.stdout + agent.log());
      const result = JSON.parse(r.stdout);
      assert.equal(result.engine, engine);
      dest = result.dest_pid;
      // "ok" means verified: every page against the manifest, the lazy ones as they arrived
      // through the tunnel; the requests, faults and the risk run are in the result.
      const pc = result.post_copy;
      assert.ok(result.ok && pc, r.stdout);
      assert.equal(pc.checked_pages, pc.lazy_pages);
      assert.ok(pc.lazy_pages > 0 && pc.requests > 0 && pc.remote_faults !== null, r.stdout);
      assert.match(pc.link_risk, /link/);
      assert.ok(pc.drain_ms > DRAIN_IDLE_MS, `the drain took ${pc.drain_ms} ms: proves nothing`);
      assert.equal(result.verified_pages, result.verification.manifest_pages);
      assert.ok(await waitGone(w.pid, 5000), "source still exists");
      assert.deepEqual(runningCopies(w.out), [dest]);
      await assertMemcheckHealthy(w, dest, 20_000);
    } finally {
      sampling = false;
      await sampler;
      agentLog = agent.log();
      for (const pid of runningCopies(w.out)) Deno.kill(pid, "SIGKILL");
      await w.stop();
      await agent.stop();
      nodes.cleanup();
      net.cleanup();
      Deno.removeSync(w.dir, { recursive: true });
    }
    // Every connection between the namespaces was the channel's: to the agent's port, or to its
    // sealed bulk stream's (authenticated over that link, AES-256-GCM records; bulk_client.ts).
    assert.ok(agent.bulkPort, "the agent has a sealed bulk stream (the default path)");
    const channel = [`${net.ipB}:${agent.port}`, `${net.ipB}:${agent.bulkPort}`];
    // An entry is "ns: STATE local>peer"; either end may be the agent's.
    const ends = (c: string) => c.slice(c.lastIndexOf(" ") + 1).split(">");
    const to = (c: string, ch: string) => ends(c).includes(ch);
    const others = [...seen].filter((c) => !channel.some((ch) => to(c, ch)));
    assert.ok(seen.size > 0, "the sampler never saw the channel's connection");
    assert.ok(
      [...seen].some((c) => to(c, channel[1])),
      `the sealed bulk stream carried the pages: ${[...seen].join(", ")}`,
    );
    assert.deepEqual(others, [], `TCP connections outside the channel: ${others.join(", ")}`);
    // The lazy pages went through the tunnel: the agent opened one for this migration.
    assert.match(agentLog, /"msg":"tunnel open"/);
  });
}
