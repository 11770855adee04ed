/**
 * Calibrate the simulator's CRIU cost model on this machine (prints one JSON object): a memcheck
 * workload of 16, 64 and 256 MiB, run as PID 1 of its own pid namespace, is dumped with real CRIU
 * (`--leave-stopped`, images on tmpfs) and restored beside the stopped original, three times each.
 * A least-squares line over the medians gives the fixed and per-page costs of the final phase,
 * which src/sim/costs.ts records.
 *
 * Usage: deno run -A build/calibrate/criu_costs.ts   (root, CRIU from `u2cm doctor --fix`)
 *
 * @module
 */
import { criuDump, criuRestore } from "../../src/criu/run.ts";
import { launchIsolated } from "../../src/engine/launch.ts";
import { waitGone } from "../../src/tracker/proc.ts";
import { buildWorkload } from "../../tests/support/workloads.ts";

const SIZES_MIB = [16, 64, 256];
const REPEAT = 3;
const memcheck = await buildWorkload("memcheck");
const medianOf = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

const rows: { mib: number; dumpMs: number; restoreMs: number }[] = [];
for (const mib of SIZES_MIB) {
  const dumps: number[] = [], restores: number[] = [];
  for (let i = 0; i < REPEAT; i++) {
    const work = Deno.makeTempDirSync({ dir: "/dev/shm", prefix: "u2cm-calib-" });
    const w = await launchIsolated({
      cmd: memcheck,
      args: ["--mib", String(mib), "--write-pages", "16", "--interval-ms", "50"],
      stdout: `${work}/stdout`,
    });
    let restored = 0;
    try {
      await new Promise((r) => setTimeout(r, 300 + mib * 4)); // let it fault its memory in
      const images = `${work}/images`;
      Deno.mkdirSync(images);
      dumps.push((await criuDump({ pid: w.pid, dir: images, leave: "stopped" })).ms);
      const r = await criuRestore({ dir: images });
      restored = r.pid;
      restores.push(r.ms);
    } finally {
      if (restored > 0) {
        try {
          Deno.kill(restored, "SIGKILL");
        } catch { /* gone */ }
        await waitGone(restored, 5000);
      }
      await w.stop();
      Deno.removeSync(work, { recursive: true });
    }
  }
  rows.push({ mib, dumpMs: medianOf(dumps), restoreMs: medianOf(restores) });
}

/** Least-squares line y = a + b·x. */
function fit(xs: number[], ys: number[]): { a: number; b: number } {
  const n = xs.length,
    mx = xs.reduce((s, x) => s + x, 0) / n,
    my = ys.reduce((s, y) => s + y, 0) / n;
  let sxy = 0, sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i] - mx) * (ys[i] - my);
    sxx += (xs[i] - mx) ** 2;
  }
  const b = sxy / sxx;
  return { a: my - b * mx, b };
}
const pages = rows.map((r) => r.mib * 256);
const dump = fit(pages, rows.map((r) => r.dumpMs));
const restore = fit(pages, rows.map((r) => r.restoreMs));
const round = (v: number, d = 1) => Math.round(v * 10 ** d) / 10 ** d;
console.log(JSON.stringify({
  bench: "criu_costs",
  rows,
  freezeMs: round(Math.max(0, dump.a)),
  restoreMs: round(Math.max(0, restore.a)),
  dumpUsPerPage: round(dump.b * 1000, 3),
  restoreUsPerPage: round(restore.b * 1000, 3),
}));
