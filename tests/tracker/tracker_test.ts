import assert from "node:assert/strict";
import {
  BackendUnavailableError,
  createTracker,
  type Mapping,
  pageSetSize,
  probeUffdWp,
  TargetGoneError,
  trackerCapabilities,
} from "../../src/tracker/mod.ts";
import { sleep, startDirtyPattern } from "../support/workloads.ts";

function mappingAt(mappings: Mapping[], start: number): Mapping {
  const m = mappings.find((m) => m.start === start);
  assert.ok(m, `no tracked mapping starts at 0x${start.toString(16)}`);
  return m;
}

Deno.test("the hash backend reports exactly the hot pages, never the cold ones", async () => {
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
  const tracker = createTracker({ pid: w.pid, backend: "hash" });
  try {
    assert.equal(tracker.backend, "hash");
    const baseline = tracker.scan();
    const hot = mappingAt(tracker.mappings(), w.regions.hot.start);
    const warm = mappingAt(tracker.mappings(), w.regions.warm.start);
    const cold = mappingAt(tracker.mappings(), w.regions.cold.start);
    assert.equal(baseline.round, 0);
    assert.equal(baseline.dirty.get(cold.id)?.length, 256, "round 0 holds every resident page");
    assert.equal(hot.end - hot.start, 64 * 4096);
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
    await w.stop();
  }
});

for (const backend of ["hash", "uffd-wp"] as const) {
  Deno.test(`warm pages show up in the rounds after their period, whole (${backend})`, async () => {
    if (backend === "uffd-wp") {
      const probe = probeUffdWp();
      assert.ok(
        probe.available,
        `uffd-wp must work on this x86_64 Linux ≥ 6.7 box: ${probe.detail}`,
      );
    }
    const w = await startDirtyPattern(["--warm-period-ms", "150", "--duration-ms", "20000"]);
    const tracker = createTracker({ pid: w.pid, backend });
    try {
      tracker.scan();
      const warm = mappingAt(tracker.mappings(), w.regions.warm.start);
      let roundsWithWarm = 0;
      for (let i = 0; i < 8; i++) {
        await sleep(60);
        const pages = tracker.scan().dirty.get(warm.id);
        if (pages) {
          assert.equal(pages.length, 32, "a warm write covers the whole warm region");
          roundsWithWarm++;
        }
      }
      assert.ok(roundsWithWarm >= 2 && roundsWithWarm <= 6, `warm in ${roundsWithWarm}/8 rounds`);
    } finally {
      tracker.close();
      await w.stop();
    }
  });
}

Deno.test("children that fork and exit mid-trace join and leave the tracked tree", async () => {
  const w = await startDirtyPattern([
    "--children",
    "2",
    "--child-start-ms",
    "150",
    "--child-life-ms",
    "400",
    "--duration-ms",
    "20000",
  ]);
  const tracker = createTracker({ pid: w.pid });
  try {
    const sizes: number[] = [];
    const childMappings = new Set<number>();
    const removed = new Set<number>();
    for (let i = 0; i < 24; i++) {
      const r = tracker.scan();
      sizes.push(r.pids.length);
      for (const m of r.added) if (m.pid !== w.pid) childMappings.add(m.id);
      for (const id of r.removed) removed.add(id);
      await sleep(50);
    }
    assert.ok(sizes.includes(3), `tree sizes seen: ${sizes.join(",")}`);
    assert.equal(sizes[0], 1);
    assert.equal(sizes[sizes.length - 1], 1, "children exited");
    assert.ok(childMappings.size > 0);
    for (const id of childMappings) assert.ok(removed.has(id), `child mapping ${id} removed`);
  } finally {
    tracker.close();
    await w.stop();
  }
});

Deno.test("mappings that appear, grow by mremap and vanish are followed", async () => {
  const w = await startDirtyPattern(["--remap-every-ms", "80", "--duration-ms", "20000"]);
  const tracker = createTracker({ pid: w.pid });
  try {
    const added: Mapping[] = [];
    const removed: number[] = [];
    tracker.scan();
    for (let i = 0; i < 20; i++) {
      await sleep(40);
      const r = tracker.scan();
      added.push(...r.added);
      removed.push(...r.removed);
      for (const m of r.added) {
        const pages = r.dirty.get(m.id)?.length ?? 0;
        assert.ok(pages <= (m.end - m.start) / 4096);
      }
    }
    const sizes = new Set(added.map((m) => (m.end - m.start) / 4096));
    assert.ok(sizes.has(8) && sizes.has(32), `sizes of new mappings: ${[...sizes].join(",")}`);
    assert.ok(removed.length >= 2, "unmapped regions are reported removed");
  } finally {
    tracker.close();
    await w.stop();
  }
});

Deno.test("a tree that exits ends tracking with TargetGoneError", async () => {
  const w = await startDirtyPattern(["--duration-ms", "300"]);
  const tracker = createTracker({ pid: w.pid });
  try {
    tracker.scan();
    assert.equal(await w.exited(), 0);
    assert.throws(() => tracker.scan(), TargetGoneError);
  } finally {
    tracker.close();
  }
});

Deno.test("access bits come from kpageflags when asked for, and are absent otherwise", async () => {
  const w = await startDirtyPattern(["--duration-ms", "20000"]);
  const plain = createTracker({ pid: w.pid });
  try {
    assert.equal(plain.accessBits, false);
    assert.equal(plain.scan().accessed, undefined);
    if (!trackerCapabilities().kpageflags.available) {
      assert.throws(() => createTracker({ pid: w.pid, accessBits: true }), BackendUnavailableError);
      return;
    }
    const tracker = createTracker({ pid: w.pid, accessBits: true });
    try {
      const r = tracker.scan();
      assert.ok(r.accessed, "accessed page set present");
      assert.ok(pageSetSize(r.accessed) <= r.residentPages);
    } finally {
      tracker.close();
    }
  } finally {
    plain.close();
    await w.stop();
  }
});
