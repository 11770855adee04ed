import assert from "node:assert/strict";
import { cpuCgroupLayout, createThrottle } from "../../src/engine/throttle.ts";
import { requireRoot } from "../support/env.ts";
import { startMemcheck } from "../criu/support.ts";

function cpuUsageUs(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
  return (Number(stat[11]) + Number(stat[12])) * 10_000; // utime + stime in 10 ms ticks
}

Deno.test("throttling caps a busy tree's CPU through its own cgroup and release undoes it", async () => {
  requireRoot("cgroup writes need root");
  const layout = cpuCgroupLayout();
  assert.ok(layout, "no cgroup cpu controller (v2 cpu.max or v1 cpu)");
  // A tree that burns CPU: memcheck writing without pause.
  const w = await startMemcheck(["--mib", "8", "--write-pages", "2000", "--interval-ms", "1"]);
  const before = Deno.readTextFileSync(`/proc/${w.pid}/cgroup`);
  const t = createThrottle("test-throttle", () => [w.pid], layout);
  try {
    const dir = `${layout.root}/u2cm-test-throttle`;
    t.set(80);
    assert.equal(t.percent, 80);
    assert.ok(Deno.readTextFileSync(`${dir}/cgroup.procs`).includes(String(w.pid)));
    const u0 = cpuUsageUs(w.pid);
    await new Promise((r) => setTimeout(r, 1000));
    const used = cpuUsageUs(w.pid) - u0;
    assert.ok(used <= 400_000, `throttled to 20 % it still used ${used} µs of CPU in 1 s`);
    t.release();
    assert.equal(t.percent, 0);
    assert.throws(() => Deno.statSync(dir), "the cgroup is removed");
    assert.equal(Deno.readTextFileSync(`/proc/${w.pid}/cgroup`), before);
    t.release(); // idempotent
  } finally {
    t.release();
    await w.stop();
    Deno.removeSync(w.dir, { recursive: true });
  }
});
