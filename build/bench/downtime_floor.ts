/**
 * The CRIU floors of the downtime benchmark (build/bench/downtime.ts): plain CRIU on this host,
 * no u2cm in the way, on the same memcheck tree.
 *
 *  - {@linkcode criuFloor}: `criu dump` of the whole tree to tmpfs (left stopped), then `criu
 *    restore` beside it: what a freeze that moves every page costs CRIU alone.
 *  - {@linkcode criuLazyFloor}: CRIU's non-memory floor, the reference of post-copy's goal
 *    (downtime ≤ 1.2× CRIU's non-memory dump + restore): `criu dump --lazy-pages` until its page
 *    server listens (every image written but the anonymous memory, which stays in the frozen
 *    tree), then `criu restore --lazy-pages` beside it against a `criu lazy-pages` daemon that
 *    fetches from that page server, until the restored tree is up (`restore -d` returned). The
 *    pages still travel after that, as in post-copy; the floor stops the clock there.
 *
 * In both, the source stays stopped while the restored copy runs, and both are killed before
 * the function returns (the restored copy first).
 *
 * @example
 * ```ts
 * const f = await criuLazyFloor(["--mib", "256"]); // { dump_ms: 61, restore_ms: 48 }
 * ```
 *
 * @module
 */
import { criuDump, criuLazyDump, criuLazyPages, criuRestore } from "../../src/criu/run.ts";
import { startMemcheck } from "../../tests/criu/support.ts";
import { runningCopies } from "../../tests/engine/support/memcheck_pids.ts";

/** What a floor measured: CRIU's dump and restore, ms. */
export type Floor = { dump_ms: number; restore_ms: number };

/**
 * Plain CRIU: dump the tree of `memcheck args` to tmpfs (left stopped), restore it, time both.
 *
 * @example
 * ```ts
 * const f = await criuFloor(["--mib", "8"], "8 MiB"); // { dump_ms: 25, restore_ms: 19 }
 * ```
 */
export async function criuFloor(args: string[], label: string): Promise<Floor> {
  const w = await startMemcheck(args);
  const dir = Deno.makeTempDirSync({ dir: "/dev/shm", prefix: "u2cm-bench-floor-" });
  let restored = 0;
  try {
    await w.waitFor(/^tick 20 /, 60_000);
    const dump = await criuDump({ pid: w.pid, dir, leave: "stopped" });
    const restore = await criuRestore({ dir });
    restored = restore.pid;
    console.error(
      `floor ${label}: dump ${dump.ms.toFixed(0)} ms, restore ${restore.ms.toFixed(0)}`,
    );
    return { dump_ms: Math.round(dump.ms), restore_ms: Math.round(restore.ms) };
  } finally {
    if (restored > 0) Deno.kill(restored, "SIGKILL");
    for (const pid of runningCopies(w.out)) Deno.kill(pid, "SIGKILL");
    await w.stop();
    Deno.removeSync(dir, { recursive: true });
    Deno.removeSync(w.dir, { recursive: true });
  }
}

/**
 * CRIU's non-memory floor: a lazy dump until its page server is up, a lazy restore until the
 * restored tree is up (see the module's text).
 *
 * @example
 * ```ts
 * const f = await criuLazyFloor(["--mib", "256"], "256 MiB");
 * ```
 */
export async function criuLazyFloor(args: string[], label: string): Promise<Floor> {
  const w = await startMemcheck(args);
  const dir = Deno.makeTempDirSync({ dir: "/dev/shm", prefix: "u2cm-bench-lazy-floor-" });
  const rdir = Deno.makeTempDirSync({ dir: "/dev/shm", prefix: "u2cm-bench-lazy-floor-r-" });
  const listen = { address: "127.0.0.1", port: freePort() };
  let restored = 0;
  const stops: (() => Promise<void>)[] = [];
  try {
    await w.waitFor(/^tick 20 /, 60_000);
    const dump = await criuLazyDump({
      pid: w.pid,
      dir,
      leave: "stopped",
      lazyPages: true,
      listen,
      dieWithParent: true,
    });
    stops.push(dump.stop);
    // The restore reads its own copy of the images (as a destination would have them).
    for (const e of Deno.readDirSync(dir)) {
      if (e.isFile && e.name.endsWith(".img")) {
        Deno.copyFileSync(`${dir}/${e.name}`, `${rdir}/${e.name}`);
      }
    }
    const daemon = criuLazyPages({ dir: rdir, ...listen, dieWithParent: true });
    stops.push(daemon.stop);
    await waitForFile(`${rdir}/lazy-pages.socket`, 5000);
    const restore = await criuRestore({ dir: rdir, lazyPages: true });
    restored = restore.pid;
    console.error(
      `lazy floor ${label}: dump ${dump.readyMs.toFixed(0)} ms, restore ${restore.ms.toFixed(0)}`,
    );
    return { dump_ms: Math.round(dump.readyMs), restore_ms: Math.round(restore.ms) };
  } finally {
    if (restored > 0) Deno.kill(restored, "SIGKILL");
    for (const stop of stops.reverse()) await stop();
    for (const pid of runningCopies(w.out)) Deno.kill(pid, "SIGKILL");
    await w.stop();
    for (const d of [dir, rdir, w.dir]) Deno.removeSync(d, { recursive: true });
  }
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function waitForFile(path: string, timeoutMs: number): Promise<void> {
  const until = performance.now() + timeoutMs;
  for (let i = 0; i < 100_000 && performance.now() < until; i++) {
    try {
      Deno.statSync(path);
      return;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 1));
  }
  throw new Error(`${path} did not appear within ${timeoutMs} ms`);
}
