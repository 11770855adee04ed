/**
 * The destination's restore handler: rebuild each process's `pages-<id>.img` from the pages the
 * source sent (its pagemap, sent as a file, lists which pages in which order) — or, for a
 * scan-and-copy (`localLazy`), read the store's own pages images in place (lazy_images.ts) and
 * check that composed layout against the manifest — then run `criu restore --leave-stopped`
 * (CRIU dies with its agent; with `localLazy` and a big tree, `--lazy-pages` from those local
 * images through a local `criu lazy-pages` daemon — with a manifest, served by a loopback page
 * server that checks each page before it is placed, local_page_server.ts) and check the
 * restored tree before reporting it ready. The tree runs only when the source commits
 * (destination.ts resumes it).
 * Nothing it writes leaves the migration's directory and its own scratch directory.
 *
 * @module
 */
import { readDumpDir } from "../criu/images/mod.ts";
import {
  copyImages,
  dropSameKernelState,
  imagesDirOf,
  rebuildPages,
  scratchDir,
} from "./restore_images.ts";
import {
  type CriuDaemon,
  CriuError,
  criuLazyPages,
  criuLocalLazyPages,
  criuRestore,
} from "../criu/run.ts";
import { composeImages } from "./lazy_images.ts";
import {
  holdLocalFill,
  lazyPagesOf,
  type LocalPageServer,
  startVerifiedLocalLazy,
} from "./local_page_server.ts";
import { type LazyCheck, registerLazyCheck, startLazyCheck } from "./lazy_check.ts";
import { lazyRunsOf } from "./lazy_read_ahead.ts";
import { verifyBeforeLazyRestore } from "./verify_lazy.ts";
import { allowedAreas } from "./page_allowance.ts";
import { criuVersionOf } from "../criu/probe.ts";
import type { RestoreContext, RestoreResult } from "./channel.ts";
import { bootId, isAlive, signalAll, startTimes, treePids, waitDead } from "../tracker/proc.ts";
import { EngineRestoreRequestSchema } from "./contract.ts";
import { type ImagesChecked, verifyAfterRestore, verifyBeforeRestore } from "./verify.ts";
import type { PageManifest } from "./manifest.ts";
import { stepClock } from "./step_clock.ts";

export { ENGINE_NAMES, EngineRestoreRequestSchema } from "./contract.ts";
export type { EngineRestoreRequest } from "./contract.ts";

/**
 * A local lazy restore pays for one more CRIU start (~0.1 s here: its kernel probe) to save
 * CRIU reading the pages (~3.5 µs a page): below this many pages the restore reads them itself.
 */
export const LOCAL_LAZY_MIN_PAGES = 16_384;

/** Options of {@linkcode restoreMigration}. */
export interface RestoreOptions {
  /**
   * A fresh, empty tmpfs directory to rebuild the images in (the caller removes it); without
   * one, one is made and removed here.
   */
  scratch?: string;
  /**
   * Check the restored, still stopped tree (root pid given) before it is reported ready: the
   * place for the post-restore read-back verification. Throwing fails the restore.
   */
  verify?: (pid: number, imagesDir: string) => Promise<void>;
  /** Where CRIU's restore log goes when the restore fails. @default `<ctx.dir>/restore.log` */
  keepLog?: string;
}

/**
 * Restore the migration in `ctx.dir` from its image files and page store, left stopped. Never
 * throws: a failure comes back as `{ ok: false, error }` (the source then resumes).
 *
 * @example
 * ```ts
 * const r = await restoreMigration({ migrationId: "m1", dir, store, request });
 * if (r.ok) console.log(`pid ${r.pid} restored, stopped`);
 * ```
 */
export async function restoreMigration(
  ctx: RestoreContext,
  options: RestoreOptions = {},
): Promise<RestoreResult> {
  const started = performance.now();
  const parsed = EngineRestoreRequestSchema.safeParse(ctx.request);
  if (!parsed.success) {
    return { ok: false, error: `bad restore request: ${parsed.error.issues[0]?.message}` };
  }
  const req = parsed.data;
  // Each step's milliseconds (reported with the verification, `steps_ms`).
  // Each step is timed once, to 0.1 ms.
  const steps: Record<string, number> = {};
  const step = stepClock(steps, { decimals: 1 });
  // Peer agents keep image files under `<migration dir>/images`; accept both layouts.
  ctx = { ...ctx, dir: imagesDirOf(ctx.dir) };
  let lazyDaemon: CriuDaemon | undefined;
  let lazyCheck: LazyCheck | undefined;
  let restoredRoot: number | undefined;
  let tunnel: { localPort: number; close(): Promise<void> } | undefined;
  let localExpected = 0;
  let localServer: LocalPageServer | undefined;
  let checkFailed = false; // the image check failed (its error is the restore's)
  // Rebuilt images go to tmpfs: CRIU reads them once, right away, on the downtime path.
  const ownScratch = options.scratch === undefined;
  const scratch = req.rebuildPages && !req.lazy
    ? options.scratch ?? await scratchDir(ctx.migrationId)
    : undefined;
  // A lazy restore keeps its daemon on the images after CRIU returns: restore in place.
  const dir = scratch ?? ctx.dir;
  try {
    const shmem = req.rebuildShmem === true && req.rebuildPages && !req.lazy;
    if (scratch) await copyImages(ctx.dir, scratch, shmem);
    if (req.sourceBootId !== undefined && req.sourceBootId === bootId()) {
      await dropSameKernelState(dir);
    }
    step("copy_ms");
    // A scan-and-copy restore (`localLazy`) reads the processes' pages in place from the
    // destination's own pages images, kept current while they arrived, plus a small parent
    // image of the out-of-order ones: nothing is rebuilt page by page. The manifest check then
    // covers that composed layout, with the hashes taken of the bytes written into each slot.
    const composed = req.localLazy && req.rebuildPages && !req.lazy && ctx.store.pagesImage
      ? await composeImages(dir, ctx.store.pagesImage, ctx.store)
      : undefined;
    step("compose_ms");
    const rebuilt = req.rebuildPages
      ? await rebuildPages({ ...ctx, dir }, req.lazy !== undefined, shmem, !composed)
      : 0;
    const pages = composed ? composed.inPlace + composed.copied : rebuilt;
    step("rebuild_ms");
    // Post-copy: the eager pages while the relay, the daemon and CRIU come up (awaited below,
    // before the tree is reported ready), each lazy page as it arrives (lazy_check.ts). The
    // relay accepts the daemon's session only once this check passed and handed it the
    // manifest: no lazy page is fetched or placed before.
    // It starts once CRIU runs (its CPU overlaps CRIU's restore, as for any other restore).
    let startLazyChecking = () => {};
    const lazyChecking = req.verify && req.lazy
      ? new Promise<void>((r) => startLazyChecking = r)
        .then(() => verifyBeforeLazyRestore(dir, req.verify!))
      : undefined;
    lazyChecking?.catch(() => {}); // awaited below
    // Any restore: the images are checked while CRIU restores them (below). The tree stays
    // stopped until its source commits, and it is reported ready only once the check passed;
    // a failed check ends it before it ever runs.
    const verifying = req.verify && !lazyChecking;
    // What a verified local lazy restore's page server checks against, filled in once the
    // check has decoded it: the server answers nothing before (held).
    const late: PageManifest = { processes: new Map(), shmem: new Map(), pages: 0 };
    if (req.lazy) {
      let target = req.lazy;
      if ("tunnel" in target) {
        if (!ctx.openTunnel) throw new Error("this agent cannot carry the page traffic's tunnel");
        // criu lazy-pages talks to our end of the tunnel; the channel carries it to the source.
        tunnel = await ctx.openTunnel();
        target = { address: "127.0.0.1", port: tunnel.localPort };
      }
      if (lazyChecking) {
        // Every page the daemon fetches passes the check first; a refused page stops the
        // restored copy for good (its memory would not be the workload's).
        const images = await readDumpDir(dir, false, { checkSizes: false });
        lazyCheck = startLazyCheck({
          upstream: target,
          manifest: lazyChecking.then((c) => c.checked.manifest),
          expectedPages: lazyChecking.then((c) => c.lazyPages),
          allowance: allowedAreas(images),
          // The lazy pages fetched ahead of the daemon once the tree resumed, checked as they
          // arrive (lazy_read_ahead.ts); U2CM_LAZY_READ_AHEAD=0 on the agent leaves every
          // request to the daemon, as before (for comparisons).
          readAhead: Deno.env.get("U2CM_LAZY_READ_AHEAD") === "0"
            ? undefined
            : lazyRunsOf(images.memory),
          criuVersion: await criuVersionOf(),
          onMismatch: () => {
            if (restoredRoot) killTree(restoredRoot);
          },
        });
        target = { address: "127.0.0.1", port: lazyCheck.port };
      }
      lazyDaemon = criuLazyPages({
        dir,
        address: target.address,
        port: target.port,
        timeoutMs: 600_000,
        dieWithParent: true,
      });
      const open = tunnel;
      const check = lazyCheck;
      lazyDaemon.status.finally(() => {
        open?.close();
        check?.close();
      });
      if (check) {
        registerLazyCheck(ctx.migrationId, check, lazyDaemon.status, `${dir}/lazy-pages.log`);
      }
      await waitForSocket(`${dir}/lazy-pages.socket`, lazyDaemon, 5000);
    } else if (
      req.localLazy && verifying && composed && pages >= LOCAL_LAZY_MIN_PAGES &&
      (localExpected = await lazyPagesOf(dir, composed)) > 0
    ) {
      // A verified lazy restore from the destination's own images: CRIU reads no bulk memory
      // now; every lazy page is read from its slot, checked against the manifest and only then
      // placed (local_page_server.ts). A refused page ends the restored copy for good.
      ({ check: localServer, daemon: lazyDaemon } = startVerifiedLocalLazy({
        migrationId: ctx.migrationId,
        dir,
        composed,
        manifest: late,
        expectedPages: localExpected,
        criuVersion: await criuVersionOf(),
        onMismatch: async () => {
          if (restoredRoot) await killTreeAndWait(restoredRoot);
        },
      }));
      lazyCheck = localServer;
      localServer.hold(); // until the images are checked and `late` is the manifest
      await waitForSocket(`${dir}/lazy-pages.socket`, lazyDaemon, 5000);
    } else if (req.localLazy && !req.verify && req.rebuildPages && pages >= LOCAL_LAZY_MIN_PAGES) {
      // (A verified restore reads the tree back, and remote reads of memory a userfaultfd still
      // owes fail with EIO: filling it first would cost what CRIU's eager read costs.)
      // Not tied to this process: once the tree is resumed, its memory depends on this daemon
      // finishing (it reads local files only and exits when every page is in place).
      lazyDaemon = criuLocalLazyPages({ dir });
      // For the destination's recovery: an agent that dies mid-restore leaves this daemon
      // waiting for a restore that never comes (a ready copy's daemon finishes on its own).
      await Deno.writeTextFile(`${dir}/lazy-pages.pid`, `${lazyDaemon.pid}\n`);
      await waitForSocket(`${dir}/lazy-pages.socket`, lazyDaemon, 5000);
    }
    step("lazy_start_ms");
    const restoring = criuRestore({
      dir,
      pidfile: `${dir}/restored.pid`,
      tcpEstablished: req.tcpEstablished,
      tcpClose: req.tcpClose,
      shellJob: req.shellJob,
      lazyPages: req.lazy !== undefined || lazyDaemon !== undefined,
      leaveStopped: true,
      guardTree: true,
    });
    restoring.catch(() => {}); // awaited below, after the check
    // Never a copy on unchecked memory: a failed check ends what CRIU restores (stopped, it never
    // ran). The check's own error is the cause (the held server, closed, refuses what it had).
    const endUnchecked = async (cause: unknown): Promise<never> => {
      checkFailed = true;
      await lazyDaemon?.stop();
      lazyCheck?.close();
      const r = await restoring.catch(() => undefined);
      if (r) await killTreeAndWait(r.pid);
      throw cause;
    };
    startLazyChecking();
    let lazyChecked: Awaited<typeof lazyChecking>;
    if (lazyChecking) {
      try {
        lazyChecked = await lazyChecking;
      } catch (e) {
        return await endUnchecked(e);
      }
      step("check_ms");
    }
    let checked: ImagesChecked | undefined = lazyChecked?.checked;
    if (verifying) {
      try {
        checked = await verifyBeforeRestore(dir, req.verify!, composed);
      } catch (e) {
        return await endUnchecked(e);
      }
      Object.assign(late, checked.manifest);
      localServer?.release(); // held again (holdLocalFill) once CRIU returned
      step("check_ms");
    }
    const restored = await restoring;
    restoredRoot = restored.pid;
    steps.criu_run_ms = Math.round(restored.ms * 10) / 10;
    step("criu_ms");
    // Until the resume the tree is stopped: the daemon's background fetches wait (the read-back
    // and the answer come first); destination.ts releases them at the resume.
    if (localServer) holdLocalFill(ctx.migrationId, localServer);
    if (!isAlive(restored.pid)) {
      return { ok: false, error: `restored pid ${restored.pid} is not alive` };
    }
    const refused = lazyCheck?.stats().mismatch;
    if (refused) {
      killTree(restored.pid);
      throw new Error(`verification failed: ${refused}`);
    }
    // The tree is stopped: read it back against the manifest (then the agent's own check).
    let verified;
    try {
      if (req.verify && checked && localExpected > 0) {
        // The composed images were checked whole (by the hashes of the bytes in each slot); the
        // lazy pages are checked again as they are placed, the eager ones are read back.
        const back = await verifyAfterRestore(restored.pid, dir, req.verify, checked, {
          skipLazy: true,
        });
        verified = { ...back, lazyPages: localExpected };
      } else if (req.verify && checked && lazyChecked) {
        // The lazy pages are not there yet (reading them would fail): they are checked as they
        // arrive; the eager ones were checked in the images.
        verified = {
          mode: req.verify.mode,
          manifestPages: checked.manifest.pages,
          imagePages: checked.imagePages,
          readBackPages: 0,
          imageMs: Math.round(checked.imageMs * 10) / 10,
          readBackMs: 0,
        };
      } else if (req.verify && checked) {
        verified = await verifyAfterRestore(restored.pid, dir, req.verify, checked);
      }
      step("read_back_ms");
      await options.verify?.(restored.pid, dir);
      step("agent_check_ms");
    } catch (e) {
      killTree(restored.pid);
      throw e;
    }
    // The lazy-pages daemon exits by itself once every page has been fetched.
    lazyDaemon = undefined;
    return {
      ok: true,
      pid: restored.pid,
      restoreMs: performance.now() - started,
      ...(verified ? { verified: { ...verified, stepsMs: steps } } : {}),
    };
  } catch (e) {
    // A page refused by the post-copy check ends the daemon, and so the restore: say why.
    const refused = checkFailed ? undefined : lazyCheck?.stats().mismatch;
    const cause = refused && !(e instanceof Error && e.message.includes(refused))
      ? new Error(`verification failed: ${refused}`)
      : e;
    await lazyDaemon?.stop();
    lazyCheck?.close();
    await tunnel?.close();
    // Keep CRIU's log for post-mortems and name it in the error.
    const keep = options.keepLog ?? `${ctx.dir}/restore.log`;
    const kept = await Deno.copyFile(`${dir}/restore.log`, keep).then(() => true, () => false);
    if (localExpected > 0) {
      // The local lazy daemon's log tells why it left (the page server's side is in `error`).
      const lazyLog = keep.replace(/restore\.log$/, "lazy-pages.log");
      if (lazyLog !== keep) await Deno.copyFile(`${dir}/lazy-pages.log`, lazyLog).catch(() => {});
    }
    const why = cause instanceof CriuError
      ? cause.message.replace(/\(log: [^)]*\)$/, "")
      : `restore failed: ${(cause as Error).message}`;
    const error = kept ? `${why} (CRIU log kept: ${keep})` : why;
    return { ok: false, error, restoreMs: performance.now() - started };
  } finally {
    if (scratch && ownScratch) await Deno.remove(scratch, { recursive: true }).catch(() => {});
  }
}

/** Kill a restored tree (root first: its pid namespace takes the rest with it). */
function killTree(root: number): void {
  const pids = treePids(root);
  signalAll(pids, "SIGKILL");
}

/** Kill a restored tree and wait until none of it is left alive. */
async function killTreeAndWait(root: number): Promise<void> {
  const pids = treePids(root);
  const starts = startTimes(pids);
  signalAll(pids, "SIGKILL");
  await waitDead(pids, starts);
}

async function waitForSocket(
  path: string,
  daemon: { status: Promise<number> },
  timeoutMs: number,
): Promise<void> {
  let exited: number | undefined;
  daemon.status.then((c) => (exited = c));
  const until = performance.now() + timeoutMs;
  // Inside the freeze: poll often (a stat), as criuLazyDump polls its log.
  for (let i = 0; i < 1_000_000 && performance.now() < until; i++) {
    try {
      Deno.statSync(path);
      return;
    } catch { /* not yet */ }
    if (exited !== undefined) throw new Error(`criu lazy-pages exited with ${exited}`);
    await new Promise((r) => setTimeout(r, 1));
  }
  throw new Error(`criu lazy-pages did not open ${path} within ${timeoutMs} ms`);
}
