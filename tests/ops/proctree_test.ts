import assert from "node:assert/strict";
import { listProcessTrees } from "../../src/ops/proctree.ts";
import { requireCommand } from "../support/env.ts";

Deno.test("a session-leader tree is listed with all its processes and their summed RSS", async () => {
  const setsid = requireCommand("setsid", "util-linux");
  const child = new Deno.Command(setsid, {
    args: ["sh", "-c", "sleep 300 & sleep 300 & wait"],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    let tree;
    for (let i = 0; i < 100 && !(tree?.processes === 3); i++) {
      await new Promise((r) => setTimeout(r, 20));
      tree = listProcessTrees({ limit: 100_000 }).find((t) => t.pid === child.pid);
    }
    assert.ok(tree, "listed");
    assert.equal(tree.name, "sh");
    assert.equal(tree.processes, 3);
    assert.match(tree.command, /^sh -c sleep 300 & sleep 300 & wait$/);
    const rss = (pid: number) =>
      Number(Deno.readTextFileSync(`/proc/${pid}/status`).match(/VmRSS:\s*(\d+)/)![1]) * 1024;
    const kids = Deno.readTextFileSync(`/proc/${child.pid}/task/${child.pid}/children`).trim()
      .split(" ").map(Number);
    const expected = rss(child.pid) + kids.reduce((s, k) => s + rss(k), 0);
    assert.ok(Math.abs(tree.rssBytes - expected) <= 64 * 1024, `${tree.rssBytes} ≈ ${expected}`);
  } finally {
    Deno.kill(-child.pid, "SIGKILL");
    await child.status;
  }
});

Deno.test("this process, its ancestors, PID 1 and kernel threads are not offered", () => {
  const trees = listProcessTrees({ limit: 100_000 });
  const pids = new Set(trees.map((t) => t.pid));
  assert.ok(!pids.has(Deno.pid));
  assert.ok(!pids.has(1));
  assert.ok(!pids.has(2));
  const ppid = Number(Deno.readTextFileSync("/proc/self/stat").split(") ")[1].split(" ")[1]);
  assert.ok(!pids.has(ppid), "parent not offered");
  for (let i = 1; i < trees.length; i++) assert.ok(trees[i - 1].rssBytes >= trees[i].rssBytes);
});
