/**
 * The uffd-wp backend on real processes: exact written pages, injection that leaves the target
 * (and a system call it is blocked in) intact, no descriptor left in the target, nothing left
 * registered after close, and a CRIU dump and restore of a tracked target.
 */
import assert from "node:assert/strict";
import { criuDump, criuRestore } from "../../src/criu/run.ts";
import { closeRaw, openRaw, uffdWpOpen, uffdWpRegister, uffdWpScan } from "../../src/native/ffi.ts";
import {
  createTracker,
  type Mapping,
  pageSetSize,
  probeUffdWp,
  TreeTracker,
  UffdWpBackend,
} from "../../src/tracker/mod.ts";
import { assertMemcheckHealthy, requireCriuBinary, startMemcheck } from "../criu/support.ts";
import { sleep, startDirtyPattern } from "../support/workloads.ts";

function requireUffdWp(): void {
  const probe = probeUffdWp();
  assert.ok(probe.available, `uffd-wp must work on this x86_64 Linux ≥ 6.7 box: ${probe.detail}`);
}

function mappingAt(mappings: Mapping[], start: number): Mapping {
  const m = mappings.find((m) => m.start === start);
  assert.ok(m, `no tracked mapping starts at 0x${start.toString(16)}`);
  return m;
}

/** The targets of /proc/PID/fd/* links. */
function fdTargets(pid: number): string[] {
  return [...Deno.readDirSync(`/proc/${pid}/fd`)].map((e) => {
    try {
      return Deno.readLinkSync(`/proc/${pid}/fd/${e.name}`);
    } catch {
      return "";
    }
  });
}

/** VmFlags lines of /proc/PID/smaps that carry the uffd-wp flag `uw`. */
function uwMappings(pid: number): number {
  return Deno.readTextFileSync(`/proc/${pid}/smaps`).split("\n")
    .filter((l) => l.startsWith("VmFlags:") && / uw( |$)/.test(l)).length;
}

Deno.test("uffd-wp reports exactly the hot pages, never the warm or cold ones", async () => {
  requireUffdWp();
  const w = await startDirtyPattern([
    "--hot",
    "64",
    "--warm",
    "32",
    "--warm-period-ms",
    "600000",
    "--cold",
    "256",
    "--duration-ms",
    "20000",
  ]);
  const backend = new UffdWpBackend();
  const tracker = new TreeTracker(w.pid, backend);
  try {
    assert.equal(tracker.backend, "uffd-wp");
    const baseline = tracker.scan();
    assert.deepEqual(backend.fallbacks, [], "no process or mapping fell back to hashing");
    const hot = mappingAt(tracker.mappings(), w.regions.hot.start);
    const warm = mappingAt(tracker.mappings(), w.regions.warm.start);
    const cold = mappingAt(tracker.mappings(), w.regions.cold.start);
    assert.equal(baseline.dirty.get(cold.id)?.length, 256, "round 0 holds every resident page");
    assert.ok(uwMappings(w.pid) > 0, "the tracked mappings carry the uw flag");
    assert.ok(!fdTargets(w.pid).some((t) => t.includes("userfaultfd")), "no uffd in the target");
    for (let i = 0; i < 5; i++) {
      await sleep(40);
      const r = tracker.scan();
      assert.deepEqual([...(r.dirty.get(hot.id) ?? [])], [...Array(64).keys()], `round ${r.round}`);
      assert.equal(r.dirty.get(warm.id), undefined, "warm pages were not written");
      assert.equal(r.dirty.get(cold.id), undefined, "cold pages were not written");
      const others = pageSetSize(r.dirty) - 64;
      assert.ok(others <= 16, `${others} pages outside the hot set (stack, libc) in one round`);
      assert.ok(r.residentPages >= 64 + 32 + 256);
    }
  } finally {
    tracker.close();
  }
  try {
    assert.equal(uwMappings(w.pid), 0, "closing the tracker unregisters every mapping");
    assert.ok(Deno.readTextFileSync(`/proc/${w.pid}/stat`).split(" ")[2] !== "Z", "target runs");
  } finally {
    await w.stop();
  }
});

Deno.test("uffd-wp follows children and mappings that appear, grow and vanish", async () => {
  requireUffdWp();
  const w = await startDirtyPattern([
    "--children",
    "2",
    "--child-start-ms",
    "100",
    "--child-life-ms",
    "400",
    "--remap-every-ms",
    "80",
    "--duration-ms",
    "20000",
  ]);
  const backend = new UffdWpBackend();
  const tracker = new TreeTracker(w.pid, backend);
  try {
    tracker.scan();
    const sizes = new Set<number>();
    const childDirty: number[] = [];
    let removed = 0;
    for (let i = 0; i < 20; i++) {
      await sleep(40);
      const r = tracker.scan();
      removed += r.removed.length;
      for (const m of r.added) {
        const pages = r.dirty.get(m.id)?.length ?? 0;
        assert.ok(pages <= (m.end - m.start) / 4096);
        if (m.pid === w.pid) sizes.add((m.end - m.start) / 4096);
      }
      for (const m of tracker.mappings()) {
        // each child rewrites a 16-page region of its own every 5 ms
        if (m.pid !== w.pid && !r.added.some((a) => a.id === m.id) && m.end - m.start === 65536) {
          childDirty.push(r.dirty.get(m.id)?.length ?? 0);
        }
      }
    }
    assert.ok(sizes.has(8) && sizes.has(32), `sizes of new mappings: ${[...sizes].join(",")}`);
    assert.ok(removed >= 2, "unmapped regions are reported removed");
    assert.ok(childDirty.includes(16), `a forked child's writes are seen: ${childDirty.join(",")}`);
    assert.deepEqual(backend.fallbacks, [], "no process or mapping fell back to hashing");
  } finally {
    tracker.close();
    await w.stop();
  }
});

Deno.test("injection into a process blocked in nanosleep and in read lets both calls finish", async () => {
  requireUffdWp();
  const sleeper = new Deno.Command("sleep", { args: ["1"], stdout: "null" }).spawn();
  const reader = new Deno.Command("head", { args: ["-c", "5"], stdin: "piped", stdout: "piped" })
    .spawn();
  try {
    await sleep(200); // both are blocked in their system call by now
    const t0 = performance.now();
    for (const pid of [sleeper.pid, reader.pid]) {
      const uffd = uffdWpOpen(pid);
      assert.ok(uffd >= 0);
      assert.ok(!fdTargets(pid).some((t) => t.includes("userfaultfd")), "no uffd in the target");
      closeRaw(uffd);
    }
    const writer = reader.stdin.getWriter();
    await writer.write(new TextEncoder().encode("hello world"));
    await writer.close();
    const out = await reader.output();
    assert.equal(new TextDecoder().decode(out.stdout), "hello", "read finished with the data");
    assert.equal(out.code, 0);
    const status = await sleeper.status;
    assert.equal(status.code, 0, "nanosleep was restarted, not failed");
    assert.ok(performance.now() - t0 < 1500, "the sleep was not restarted from scratch twice");
  } finally {
    for (const c of [sleeper, reader]) {
      try {
        c.kill("SIGKILL");
      } catch { /* exited */ }
    }
    await sleeper.status;
    await reader.status;
  }
});

Deno.test("a scan without re-arm reports the written pages again; with re-arm once", async () => {
  requireUffdWp();
  const w = await startDirtyPattern([
    "--hot",
    "8",
    "--hot-every-ms",
    "600000",
    "--duration-ms",
    "20000",
  ]);
  const uffd = uffdWpOpen(w.pid);
  const pagemap = openRaw(`/proc/${w.pid}/pagemap`);
  try {
    const { start } = w.regions.cold;
    const pages = w.regions.cold.pages;
    uffdWpRegister(uffd, start, pages * 4096);
    const out = new Uint32Array(pages);
    uffdWpScan(pagemap, start, pages, true, out); // arm
    assert.equal(uffdWpScan(pagemap, start, pages, true, out), 0, "nothing written since the arm");
    // write two pages of the target's cold region through /proc/PID/mem (a real write fault)
    const mem = Deno.openSync(`/proc/${w.pid}/mem`, { read: true, write: true });
    try {
      for (const page of [3, 200]) {
        mem.seekSync(start + page * 4096 + 17, Deno.SeekMode.Start);
        mem.writeSync(new Uint8Array([0x5a]));
      }
    } finally {
      mem.close();
    }
    assert.equal(uffdWpScan(pagemap, start, pages, false, out), 2);
    assert.deepEqual([...out.subarray(0, 2)], [3, 200]);
    assert.equal(uffdWpScan(pagemap, start, pages, true, out), 2, "still written: not re-armed");
    assert.equal(uffdWpScan(pagemap, start, pages, true, out), 0, "re-armed by the last scan");
  } finally {
    closeRaw(pagemap);
    closeRaw(uffd);
    await w.stop();
  }
});

Deno.test("CRIU dumps (leave-running, then killed) and restores a target tracked by uffd-wp", async () => {
  requireCriuBinary();
  requireUffdWp();
  const w = await startMemcheck(["--mib", "8"]);
  const running = Deno.makeTempDirSync({ prefix: "u2cm-uffdwp-dump-" });
  const killed = Deno.makeTempDirSync({ prefix: "u2cm-uffdwp-dump-" });
  const tracker = createTracker({ pid: w.pid, backend: "uffd-wp" });
  let restored = 0;
  try {
    tracker.scan();
    await sleep(50);
    tracker.scan();
    assert.ok(uwMappings(w.pid) > 0, "the target is tracked during the dump");
    await criuDump({ pid: w.pid, dir: running, leave: "running" });
    await sleep(50);
    assert.ok(pageSetSize(tracker.scan().dirty) > 0, "tracking goes on after the dump");
    await assertMemcheckHealthy(w, w.pid);
    assert.ok(uwMappings(w.pid) > 0, "still tracked");
    await criuDump({ pid: w.pid, dir: killed, leave: "killed" });
    tracker.close();
    // the unshare parent reports its child's death on the (dumped, empty) stderr file
    await sleep(50);
    Deno.truncateSync(`${w.dir}/stderr`, 0);
    const run = await criuRestore({ dir: killed });
    restored = run.pid;
    assert.equal(uwMappings(restored), 0, "the restored copy carries no uffd-wp registration");
    await assertMemcheckHealthy(w, restored);
  } finally {
    tracker.close();
    if (restored > 0) {
      try {
        Deno.kill(restored, "SIGKILL");
      } catch { /* gone */ }
    }
    await w.stop();
    if (Deno.env.get("U2CM_KEEP")) console.log(killed);
    else for (const d of [running, killed, w.dir]) Deno.removeSync(d, { recursive: true });
  }
});

Deno.test("a target another tracer holds falls back to hashing, still exact", async () => {
  requireUffdWp();
  const w = await startDirtyPattern(["--hot", "16", "--duration-ms", "20000"]);
  const strace = new Deno.Command("strace", {
    args: ["-qq", "-o", "/dev/null", "-e", "trace=none", "-p", String(w.pid)],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const backend = new UffdWpBackend();
  let tracker: TreeTracker | undefined;
  try {
    const tracerPid = () =>
      Number(/TracerPid:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${w.pid}/status`))?.[1]);
    for (let i = 0; i < 200 && tracerPid() === 0; i++) await sleep(10);
    assert.notEqual(tracerPid(), 0, "strace attached");
    tracker = new TreeTracker(w.pid, backend);
    tracker.scan();
    assert.equal(backend.fallbacks.length, 1, "the traced process is hashed instead");
    assert.match(backend.fallbacks[0], /EPERM|errno/);
    const hot = mappingAt(tracker.mappings(), w.regions.hot.start);
    await sleep(40);
    const r = tracker.scan();
    assert.deepEqual([...(r.dirty.get(hot.id) ?? [])], [...Array(16).keys()]);
    assert.equal(uwMappings(w.pid), 0, "nothing registered in the traced process");
  } finally {
    tracker?.close();
    strace.kill("SIGKILL");
    await strace.status;
    await w.stop();
  }
});
