/**
 * The destination's restore handler: rebuild each process's `pages-<id>.img` from the pages the
 * source sent (its pagemap, sent as a file, lists which pages in which order) — or, for a
 * scan-and-copy (`localLazy`), read the store's own pages images in place (lazy_images.ts) and
 * restore with `--lazy-pages` from them through a local `criu lazy-pages` daemon — then run
 * `criu restore --leave-stopped` (CRIU dies with its agent) and check the restored tree before
 * reporting it ready. The tree runs only when the source commits (destination.ts resumes it).
 * Nothing it writes leaves the migration's directory and its own scratch directory.
 *
 * @module
 */
import { z } from "zod";
import { decodePagemap, decodePstree, PAGE_SIZE, storedAddresses } from "../criu/images/mod.ts";
import {
  type CriuDaemon,
  CriuError,
  criuLazyPages,
  criuLocalLazyPages,
  criuRestore,
} from "../criu/run.ts";
import type { RestoreContext, RestoreResult } from "./channel.ts";
import { composeImages } from "./lazy_images.ts";
import { isAlive, signalAll, treePids } from "./proc.ts";

/**
 * A local lazy restore pays for one more CRIU start (~0.1 s here: its kernel probe) to save
 * CRIU reading the pages (~3.5 µs a page): below this many pages the restore reads them itself.
 */
export const LOCAL_LAZY_MIN_PAGES = 16_384;

/** The engines a restore request may name. */
export const ENGINE_NAMES = ["delta", "predump", "lazy", "hybrid"] as const;

/** The restore request every engine sends (validated; unknown keys rejected). */
export const EngineRestoreRequestSchema = z.object({
  engine: z.enum(ENGINE_NAMES),
  /** Rebuild pages images from the page store (delta, hybrid); false: images came whole. */
  rebuildPages: z.boolean(),
  /** Restore established TCP connections. */
  tcpEstablished: z.boolean().optional(),
  /** Restore dumped TCP connections closed. */
  tcpClose: z.boolean().optional(),
  /** The tree was a shell job. */
  shellJob: z.boolean().optional(),
  /**
   * Restore with `--lazy-pages` from the images rebuilt here (`criu lazy-pages -D`, no page
   * server): CRIU's restore reads no bulk memory, the local daemon fills it in afterwards.
   */
  localLazy: z.boolean().optional(),
  /** Lazy restore: the source's page server to fetch the remaining pages from. */
  lazy: z.object({
    address: z.string().regex(/^[0-9a-fA-F:.]{2,64}$/),
    port: z.number().int().min(1).max(65535),
  }).optional(),
}).strict();

/** A validated restore request. */
export type EngineRestoreRequest = z.infer<typeof EngineRestoreRequestSchema>;

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
  // Peer agents keep image files under `<migration dir>/images`; accept both layouts.
  ctx = { ...ctx, dir: imagesDirOf(ctx.dir) };
  let lazyDaemon: CriuDaemon | undefined;
  // Rebuilt images go to tmpfs: CRIU reads them once, right away, on the downtime path.
  const ownScratch = options.scratch === undefined;
  const scratch = req.rebuildPages && !req.lazy
    ? options.scratch ?? await scratchDir(ctx.migrationId)
    : undefined;
  // A lazy restore keeps its daemon on the images after CRIU returns: restore in place.
  const dir = scratch ?? ctx.dir;
  try {
    if (scratch) await copyImages(ctx.dir, scratch);
    // A local lazy restore reads the destination's own pages images in place when it keeps
    // them; otherwise (and when the layout does not fit) the images are rebuilt.
    const composed = req.localLazy && ctx.store.pagesImage && !req.lazy
      ? await composeImages(dir, ctx.store.pagesImage, ctx.store)
      : undefined;
    const rebuilt = req.rebuildPages && !composed
      ? await rebuildPages({ ...ctx, dir }, req.lazy !== undefined)
      : 0;
    const pages = composed ? composed.inPlace + composed.copied : rebuilt;
    if (req.lazy) {
      lazyDaemon = criuLazyPages({
        dir,
        address: req.lazy.address,
        port: req.lazy.port,
        timeoutMs: 600_000,
        dieWithParent: true,
      });
      await waitForSocket(`${dir}/lazy-pages.socket`, lazyDaemon, 5000);
    } else if (req.localLazy && req.rebuildPages && pages >= LOCAL_LAZY_MIN_PAGES) {
      // Not tied to this process: once the tree is resumed, its memory depends on this daemon
      // finishing (it reads local files only and exits when every page is in place).
      lazyDaemon = criuLocalLazyPages({ dir });
      // For the destination's recovery: an agent that dies mid-restore leaves this daemon
      // waiting for a restore that never comes (a ready copy's daemon finishes on its own).
      await Deno.writeTextFile(`${dir}/lazy-pages.pid`, `${lazyDaemon.pid}\n`);
      await waitForSocket(`${dir}/lazy-pages.socket`, lazyDaemon, 5000);
    }
    const restored = await criuRestore({
      dir,
      pidfile: `${dir}/restored.pid`,
      tcpEstablished: req.tcpEstablished,
      tcpClose: req.tcpClose,
      shellJob: req.shellJob,
      lazyPages: req.lazy !== undefined || lazyDaemon !== undefined,
      leaveStopped: true,
      dieWithParent: true,
    });
    if (!isAlive(restored.pid)) {
      return { ok: false, error: `restored pid ${restored.pid} is not alive` };
    }
    try {
      await options.verify?.(restored.pid, dir);
    } catch (e) {
      killTree(restored.pid);
      throw e;
    }
    // The lazy-pages daemon exits by itself once every page has been fetched.
    lazyDaemon = undefined;
    return { ok: true, pid: restored.pid, restoreMs: performance.now() - started };
  } catch (e) {
    await lazyDaemon?.stop();
    // Keep CRIU's log for post-mortems and name it in the error.
    const keep = options.keepLog ?? `${ctx.dir}/restore.log`;
    const kept = await Deno.copyFile(`${dir}/restore.log`, keep).then(() => true, () => false);
    const why = e instanceof CriuError
      ? e.message.replace(/\(log: [^)]*\)$/, "")
      : `restore failed: ${(e as Error).message}`;
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

/** `dir/images` when the image files live there, else `dir`. */
export function imagesDirOf(dir: string): string {
  try {
    Deno.statSync(`${dir}/images/pstree.img`);
    return `${dir}/images`;
  } catch {
    return dir;
  }
}

/** A fresh directory on tmpfs (`$U2CM_RESTORE_TMP`, else /dev/shm) for one restore. */
async function scratchDir(id: string): Promise<string | undefined> {
  const base = Deno.env.get("U2CM_RESTORE_TMP") ?? "/dev/shm";
  try {
    return await Deno.makeTempDir({ dir: base, prefix: `u2cm-restore-${id}-` });
  } catch {
    return undefined;
  }
}

/** Copy the image files (not the pages, which are rebuilt) from `from` to `to`. */
async function copyImages(from: string, to: string): Promise<void> {
  for await (const e of Deno.readDir(from)) {
    if (!e.isFile || /^pages-\d+\.img$/.test(e.name) || e.name.endsWith(".log")) continue;
    await Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`);
  }
}

/** Pages written per step when rebuilding a pages image. */
const WRITE_PAGES = 2048;

/**
 * Write `pages-<id>.img` of every process of the dump from the page store. For a lazy restore,
 * runs still marked lazy are left out (the lazy-pages daemon fetches them).
 */
export async function rebuildPages(ctx: RestoreContext, lazyRestore = false): Promise<number> {
  const pstree = decodePstree(await Deno.readFile(`${ctx.dir}/pstree.img`));
  const buf = new Uint8Array(WRITE_PAGES * PAGE_SIZE);
  let total = 0;
  for (const p of pstree) {
    const name = `pagemap-${p.pid}.img`;
    const pagemap = decodePagemap(await Deno.readFile(`${ctx.dir}/${name}`), name);
    const addresses = storedAddresses(pagemap, lazyRestore);
    const out = await Deno.open(`${ctx.dir}/pages-${pagemap.pagesId}.img`, {
      write: true,
      create: true,
      truncate: true,
    });
    try {
      for (let base = 0; base < addresses.length; base += WRITE_PAGES) {
        const count = Math.min(WRITE_PAGES, addresses.length - base);
        for (let i = 0; i < count; i++) {
          const addr = addresses[base + i];
          const got = ctx.store.get(p.pid, addr);
          const page = got instanceof Promise ? await got : got;
          if (!page || page.length !== PAGE_SIZE) {
            throw new Error(
              `page 0x${addr.toString(16)} of pid ${p.pid} never arrived (${base + i} of ` +
                `${addresses.length} present)`,
            );
          }
          buf.set(page, i * PAGE_SIZE);
        }
        const chunk = buf.subarray(0, count * PAGE_SIZE);
        let done = 0;
        while (done < chunk.length) done += out.writeSync(chunk.subarray(done));
      }
    } finally {
      out.close();
    }
    total += addresses.length;
  }
  return total;
}

async function waitForSocket(
  path: string,
  daemon: { status: Promise<number> },
  timeoutMs: number,
): Promise<void> {
  let exited: number | undefined;
  daemon.status.then((c) => (exited = c));
  const until = performance.now() + timeoutMs;
  for (let i = 0; i < 10_000 && performance.now() < until; i++) {
    try {
      Deno.statSync(path);
      return;
    } catch { /* not yet */ }
    if (exited !== undefined) throw new Error(`criu lazy-pages exited with ${exited}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`criu lazy-pages did not open ${path} within ${timeoutMs} ms`);
}
