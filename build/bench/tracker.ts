/**
 * Tracker benchmark (prints one JSON object):
 *  - hash scan rate on a 1 GiB process, as a ratio to a plain C process_vm_readv + hash loop over
 *    the same memory in the same run (goal >= 0.8);
 *  - pagemap residency scan rate, bulk pread and PAGEMAP_SCAN (goal >= 10 Mpages/s);
 *  - slowdown of a write-heavy workload traced at 100 ms and 1 s, against untraced runs of the
 *    same workload in the same run (goal <= 10 % at 1 s);
 *  - one round's cost of the uffd-wp backend against the hash backend on a 256 MiB process that
 *    rewrites 64 pages, rounds of the two interleaved in one run (null where uffd-wp cannot run).
 *
 * @module
 */
import { cacheDir, compile, hostArch } from "../../src/native/build.ts";
import { closeRaw, openRaw, residentMap, scanAvailable } from "../../src/native/ffi.ts";
import { createTracker, type DirtyTracker, probeUffdWp } from "../../src/tracker/mod.ts";
import { buildWorkload, sleep, startDirtyPattern } from "../../tests/support/workloads.ts";

const GIB_PAGES = 262144;

function buildBaseline(): string {
  const out = `${cacheDir()}/bench/hashloop`;
  Deno.mkdirSync(`${cacheDir()}/bench`, { recursive: true });
  const src = (p: string) => new URL(p, import.meta.url).pathname;
  compile(hostArch(), ["-o", out, src("./hashloop.c"), src("../../src/native/shim.c")]);
  return out;
}

async function hashRate() {
  const w = await startDirtyPattern(["--hot", "1", "--warm", "1", "--cold", String(GIB_PAGES)]);
  try {
    const tracker = createTracker({ pid: w.pid, backend: "hash" });
    tracker.scan();
    let best = Infinity;
    let pages = 0;
    for (let i = 0; i < 3; i++) {
      const r = tracker.scan();
      if (r.scanMs < best) {
        best = r.scanMs;
        pages = r.residentPages;
      }
    }
    tracker.close();
    const out = new Deno.Command(buildBaseline(), {
      args: [String(w.pid), w.regions.cold.start.toString(16), String(GIB_PAGES), "3"],
    }).outputSync();
    const baselineS = Number(/seconds ([\d.]+)/.exec(new TextDecoder().decode(out.stdout))?.[1]);
    const oursGiBs = (pages * 4096) / 2 ** 30 / (best / 1000);
    const baseGiBs = 1 / baselineS;
    const fd = openRaw(`/proc/${w.pid}/pagemap`);
    const present = new Uint8Array(65536);
    const scratch = new Uint32Array(65536);
    const rate = (useScan: boolean) => {
      let bestMs = Infinity;
      for (let r = 0; r < 5; r++) {
        const t0 = performance.now();
        for (let base = 0; base < GIB_PAGES; base += 65536) {
          residentMap(fd, w.regions.cold.start + base * 4096, 65536, useScan, present, scratch);
        }
        bestMs = Math.min(bestMs, performance.now() - t0);
      }
      return GIB_PAGES / (bestMs / 1000) / 1e6;
    };
    const pread = rate(false);
    const scan = scanAvailable(fd) ? rate(true) : null;
    closeRaw(fd);
    return {
      hash_scan_gib_per_s: round(oursGiBs),
      baseline_c_loop_gib_per_s: round(baseGiBs),
      hash_scan_ratio_to_c_loop: round(oursGiBs / baseGiBs),
      pages_per_round: pages,
      pagemap_pread_mpages_per_s: round(pread),
      pagemap_scan_mpages_per_s: scan === null ? null : round(scan),
    };
  } finally {
    await w.stop();
  }
}

async function writeLoop(intervalMs: number | null): Promise<number> {
  const exe = buildWorkload("write_loop");
  const child = new Deno.Command(exe, { args: ["256", "4000"], stdout: "piped" }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("ready")) text += (await reader.read()).value ?? "";
  let tracing = Promise.resolve();
  if (intervalMs !== null) {
    const tracker = createTracker({ pid: child.pid, backend: "hash" });
    tracing = (async () => {
      try {
        for (;;) {
          tracker.scan();
          await sleep(intervalMs);
        }
      } catch {
        // the workload exited
      } finally {
        tracker.close();
      }
    })();
  }
  for (;;) {
    const { value, done } = await reader.read();
    if (value) text += value;
    if (done) break;
  }
  await child.status;
  await tracing;
  return Number(/writes (\d+)/.exec(text)?.[1]);
}

async function roundCost() {
  const pages = 65536; // 256 MiB
  const w = await startDirtyPattern(["--hot", "64", "--warm", "1", "--cold", String(pages)]);
  try {
    const uffdOk = probeUffdWp().available;
    const hash = createTracker({ pid: w.pid, backend: "hash" });
    const uffd: DirtyTracker | undefined = uffdOk
      ? createTracker({ pid: w.pid, backend: "uffd-wp" })
      : undefined;
    hash.scan();
    uffd?.scan();
    const hashMs: number[] = [];
    const uffdMs: number[] = [];
    let uffdDirty = 0;
    for (let i = 0; i < 7; i++) {
      await sleep(20);
      hashMs.push(hash.scan().scanMs);
      if (uffd) {
        await sleep(20);
        const r = uffd.scan();
        uffdMs.push(r.scanMs);
        uffdDirty = Math.max(uffdDirty, [...r.dirty.values()].reduce((n, p) => n + p.length, 0));
      }
    }
    hash.close();
    uffd?.close();
    const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const h = median(hashMs);
    const u = uffd ? median(uffdMs) : null;
    return {
      round_ms_hash_256mib: round(h),
      round_ms_uffdwp_256mib: u === null ? null : round(u),
      round_cost_ratio_uffdwp_to_hash: u === null ? null : round(u / h),
      uffdwp_max_dirty_pages_per_round: uffd ? uffdDirty : null,
    };
  } finally {
    await w.stop();
  }
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

const rates = await hashRate();
const rounds = await roundCost();
const untraced1 = await writeLoop(null);
const traced100 = await writeLoop(100);
const traced1000 = await writeLoop(1000);
const untraced2 = await writeLoop(null);
const untraced = (untraced1 + untraced2) / 2;
console.log(JSON.stringify({
  bench: "tracker",
  ...rates,
  write_loop_untraced_writes: untraced,
  slowdown_hash_100ms: round(1 - traced100 / untraced),
  slowdown_hash_1s: round(1 - traced1000 / untraced),
  ...rounds,
  goals: {
    hash_scan_ratio_to_c_loop: ">= 0.8",
    pagemap_mpages_per_s: ">= 10",
    slowdown_hash_1s: "<= 0.10",
  },
}));
