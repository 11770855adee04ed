/**
 * The `lazy` engine (post-copy): freeze and dump the tree with `--lazy-pages`, leaving its memory
 * with the dump's page server; send the small image files; the destination restores at once and
 * its `criu lazy-pages` daemon fetches pages on demand (userfaultfd) and in the background. The
 * source copy is ended only after every page has been fetched. Downtime no longer depends on the
 * memory size; the price is that a link failure after the restore loses the workload.
 *
 * The page traffic between the two CRIUs (source page server ← destination lazy-pages daemon)
 * goes through the peer channel's tunnel (src/peer/tunnel.ts): the page server listens on
 * 127.0.0.1 only, the destination's daemon connects to its agent's loopback endpoint, and the
 * bytes cross the link inside the authenticated channel. Only an in-process channel (tests)
 * makes the daemon connect to the page server directly, at `ctx.lazyAddress`.
 *
 * @module
 */
import { criuLazyDump, type LazyDump } from "../criu/run.ts";
import { carriesTunnels, openTunnel } from "../peer/mod.ts";
import { tcpDumpOptions, tcpRestoreRequest } from "./delta.ts";
import { imageFilesToSend } from "./files.ts";
import { isAlive, nsPids, signalAll, treePids } from "./proc.ts";
import {
  type MigrationContext,
  type MigrationEngine,
  MigrationError,
  outcomeOf,
  type PhaseTimes,
} from "./types.ts";

/** The lazy engine. */
export const lazyEngine: MigrationEngine = {
  name: "lazy",
  migrate: async (ctx) => {
    const started = performance.now();
    const final = await lazyFinal(ctx, { engine: "lazy" });
    return outcomeOf("lazy", ctx, started, [], { ...final, pages: 0 });
  },
};

/** Options of {@linkcode lazyFinal}. */
export interface LazyFinalOptions {
  /** Engine named in the restore request. */
  engine: "lazy" | "hybrid";
  /**
   * Between the dump and the restore request: send what the destination should restore eagerly
   * (hybrid); returns the pages sent. Default: send every image file as dumped.
   */
  prepare?: (dump: LazyDump, dir: string) => Promise<number>;
  /** Milliseconds to wait for the destination to fetch every page. @default 120000 */
  drainTimeoutMs?: number;
}

/** A free TCP port on `address`. */
export function freePort(address: string): number {
  const l = Deno.listen({ hostname: address, port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/**
 * The lazy final phase shared by `lazy` and `hybrid`: freeze + lazy dump, send images, restore
 * lazily on the destination, wait for the page transfer to finish, end the source. Resumes the
 * source on failure before the destination confirms.
 */
export async function lazyFinal(
  ctx: MigrationContext,
  options: LazyFinalOptions,
): Promise<{ downtimeMs: number; destPid: number; phases: PhaseTimes; pages: number }> {
  const dir = `${ctx.workDir}/lazy`;
  await Deno.mkdir(dir, { recursive: true });
  // Over a peer agent the page server's traffic goes through the channel's tunnel.
  const tunnel = carriesTunnels(ctx.channel)
    ? await openTunnel({ channel: ctx.channel, signal: ctx.signal })
    : undefined;
  const address = tunnel ? "127.0.0.1" : ctx.lazyAddress ?? "127.0.0.1";
  const port = tunnel?.localPort ?? freePort(address);
  const sourcePids = treePids(ctx.pid);
  const ownPidNs = nsPids(ctx.pid).at(-1) === 1;
  const phases: PhaseTimes = { freeze_ms: 0, dump_ms: 0, transfer_ms: 0, restore_ms: 0 };
  let dump: LazyDump | undefined;
  let confirmed = false;
  const freezeAt = performance.now();
  try {
    ctx.onPhase?.("frozen");
    ctx.onProgress?.({ kind: "phase", phase: "freeze" });
    dump = await criuLazyDump({
      pid: ctx.pid,
      dir,
      leave: "stopped",
      lazyPages: true,
      listen: { address, port },
      signal: ctx.signal,
      ...tcpDumpOptions(ctx),
      timeoutMs: options.drainTimeoutMs ?? 120_000,
    });
    phases.dump_ms = dump.readyMs;
    phases.freeze_ms = dump.readyMs;
    ctx.onProgress?.({ kind: "phase", phase: "transfer" });
    const transferAt = performance.now();
    let pages = 0;
    if (options.prepare) pages = await options.prepare(dump, dir);
    else {
      for (const name of await imageFilesToSend(dir, false)) {
        await ctx.channel.sendFile(name, await Deno.readFile(`${dir}/${name}`));
      }
    }
    await ctx.channel.flush();
    phases.transfer_ms = performance.now() - transferAt;
    ctx.signal?.throwIfAborted();
    ctx.onPhase?.("restoring");
    ctx.onProgress?.({ kind: "phase", phase: "restore" });
    const restoreAt = performance.now();
    const result = await ctx.channel.restore({
      engine: options.engine,
      rebuildPages: options.prepare !== undefined,
      lazy: tunnel ? { tunnel: true } : { address, port },
      ...tcpRestoreRequest(ctx),
    });
    phases.restore_ms = performance.now() - restoreAt;
    if (!result.ok || result.pid === undefined) {
      throw new Error(`destination could not restore: ${result.error ?? "no pid"}`);
    }
    confirmed = true;
    const downtimeMs = performance.now() - freezeAt;
    // The destination runs the tree now; it pulls the remaining pages from our page server.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const code = await Promise.race([
      dump.status,
      new Promise<number>((r) =>
        timer = setTimeout(() => r(-1), options.drainTimeoutMs ?? 120_000)
      ),
    ]).finally(() => clearTimeout(timer));
    if (code !== 0) {
      ctx.onPhase?.("failed");
      throw new MigrationError(
        `the page transfer after the lazy restore did not finish (dump exit ${code}); the ` +
          `destination copy (pid ${result.pid}) may fault on missing pages`,
        "restoring",
        false,
      );
    }
    if (ownPidNs) signalAll([ctx.pid], "SIGKILL");
    signalAll(sourcePids, "SIGKILL");
    ctx.onPhase?.("done");
    ctx.onProgress?.({ kind: "phase", phase: "done" });
    return { downtimeMs, destPid: result.pid, phases, pages };
  } catch (e) {
    if (e instanceof MigrationError) throw e;
    if (!confirmed) {
      await dump?.stop();
      signalAll(sourcePids, "SIGCONT");
      ctx.onProgress?.({ kind: "phase", phase: "rollback" });
      await ctx.channel.abort(`source rolled back: ${(e as Error).message}`).catch(() => {});
    }
    throw new MigrationError(
      `lazy migration failed: ${(e as Error).message}`,
      confirmed ? "restoring" : "frozen",
      isAlive(ctx.pid),
    );
  } finally {
    await tunnel?.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
