/**
 * The images a restore reads, made ready: the restore's directory (`<migration dir>/images` or the
 * directory itself), a tmpfs scratch copy, the processes' `pages-<id>.img` rebuilt from the page
 * store in the order their pagemaps list, and the same-kernel state a restore beside its stopped
 * source must not replay. Used by the engine's restore handler (restore.ts) and the container
 * destinations.
 *
 * @example
 * ```ts
 * const dir = imagesDirOf(migrationDir);
 * const pages = await rebuildPages({ ...ctx, dir }, false, false);
 * ```
 *
 * @module
 */
import {
  covers,
  decodePagemap,
  decodePstree,
  isZombie,
  PAGE_SIZE,
  processPagesFiles,
  readDumpDir,
  rebuildableShmem,
  rebuiltPagesFiles,
  shmemAddress,
  storedAddresses,
} from "../criu/images/mod.ts";
import type { RestoreContext } from "./channel.ts";
import { MANIFEST_FILE } from "./contract.ts";

/**
 * Image files describing kernel state that, on the source's own kernel, the stopped source copy
 * still holds and the restored copy shares: FIFO contents (`fifo-data.img`). CRIU dumps a FIFO's
 * unread data with tee(), leaving it in the pipe, and the source keeps the FIFO open; restoring
 * vmsplice()s the data again into that same pipe (SPLICE_F_NONBLOCK), which fails with EAGAIN
 * once the pipe is full (criu/pipes.c restore_pipe_data) and duplicates the data when it fits.
 * Without the image CRIU restores the FIFOs empty ("No fifo-data.img image"), and the restored
 * copy reads the data still buffered in the kernel once the source copy ends.
 */
export const SAME_KERNEL_IMAGES = ["fifo-data.img"] as const;

/** Remove {@linkcode SAME_KERNEL_IMAGES} from the restore directory `dir`. */
export async function dropSameKernelState(dir: string): Promise<void> {
  for (const name of SAME_KERNEL_IMAGES) {
    await Deno.remove(`${dir}/${name}`).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
  }
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
export async function scratchDir(id: string): Promise<string | undefined> {
  const base = Deno.env.get("U2CM_RESTORE_TMP") ?? "/dev/shm";
  try {
    return await Deno.makeTempDir({ dir: base, prefix: `u2cm-restore-${id}-` });
  } catch {
    return undefined;
  }
}

/**
 * Copy the image files from `from` to `to`: not the pages files that are rebuilt (the
 * processes', and with `shmem` those of the shared-memory objects that travelled as pages).
 */
export async function copyImages(from: string, to: string, shmem: boolean): Promise<void> {
  const rebuilt = shmem ? await rebuiltPagesFiles(from, true) : await processPagesFiles(from);
  const copies: Promise<void>[] = [];
  for await (const e of Deno.readDir(from)) {
    if (!e.isFile || rebuilt.has(e.name) || e.name.endsWith(".log")) continue;
    // The source's page manifest (16 bytes a page: 11 MiB of JSON for 2 GiB) is only read by
    // the check, never by CRIU: linked, not copied inside the freeze.
    copies.push(
      e.name === MANIFEST_FILE
        ? Deno.realPath(`${from}/${e.name}`).then((p) => Deno.symlink(p, `${to}/${e.name}`))
        : Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`),
    );
  }
  // A dozen small files: copied side by side, not one round trip after another.
  await Promise.all(copies);
}

/** Pages written per step when rebuilding a pages image. */
const WRITE_PAGES = 2048;

/**
 * Write `pages-<id>.img` of every live process of the dump from the page store (zombies have
 * no memory images), and with `shmem` those of the shared-memory objects whose pages travelled
 * as pages of the process mapping them ({@linkcode rebuildableShmem}). For a lazy restore, runs
 * still marked lazy are left out (the lazy-pages daemon fetches them). Without `processes` only
 * the shared-memory objects are rebuilt (the processes' pages are composed in place).
 */
export async function rebuildPages(
  ctx: RestoreContext,
  lazyRestore = false,
  shmem = false,
  processes = true,
): Promise<number> {
  if (!processes && !shmem) return 0;
  const pstree = decodePstree(await Deno.readFile(`${ctx.dir}/pstree.img`));
  const buf = new Uint8Array(WRITE_PAGES * PAGE_SIZE);
  let total = 0;
  for (const p of processes ? pstree : []) {
    const name = `pagemap-${p.pid}.img`;
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(`${ctx.dir}/${name}`);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound && await isZombie(ctx.dir, p.pid)) continue;
      throw e;
    }
    const pagemap = decodePagemap(bytes, name);
    const addresses = storedAddresses(pagemap, lazyRestore);
    const file = `${ctx.dir}/pages-${pagemap.pagesId}.img`;
    const page = (i: number) => ctx.store.get(p.pid, addresses[i]);
    total += await writePagesFile(addresses.length, page, file, buf, `pid ${p.pid}`, addresses);
  }
  if (shmem && await hasShmemPages(ctx.dir)) {
    const dump = await readDumpDir(ctx.dir, false, { checkSizes: false });
    const plan = await rebuildableShmem(dump);
    for (const obj of dump.shmem) {
      const candidates = plan.get(obj.id);
      if (!candidates) continue; // its pages file came whole
      // Each page is the store's page under the first mapping it is held under (the source
      // sent it under the first mapping whenever an earlier-held copy was not current).
      const keys = obj.offsets.map((o) => candidates.filter((m) => covers(m, o)));
      const page = async (i: number) => {
        for (const m of keys[i]) {
          const got = await ctx.store.get(m.pid, shmemAddress(m, obj.offsets[i]));
          if (got) return got;
        }
        return undefined;
      };
      const file = `${ctx.dir}/${obj.pagesFile}`;
      total += await writePagesFile(obj.offsets.length, page, file, buf, `shared memory ${obj.id}`);
    }
  }
  return total;
}

/**
 * Whether `dir` holds a shared-memory object's pagemap (without one there is nothing to
 * rebuild, and the dump's structure, a page list per process, is not decoded for nothing).
 */
async function hasShmemPages(dir: string): Promise<boolean> {
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && /^pagemap-shmem-\d+\.img$/.test(e.name)) return true;
  }
  return false;
}

/** Write pages `page(0)` … `page(count - 1)` to `file`, in order; returns how many. */
async function writePagesFile(
  count: number,
  page: (i: number) => Uint8Array | undefined | Promise<Uint8Array | undefined>,
  file: string,
  buf: Uint8Array,
  what: string,
  addresses?: number[],
): Promise<number> {
  const out = await Deno.open(file, { write: true, create: true, truncate: true });
  try {
    for (let base = 0; base < count; base += WRITE_PAGES) {
      const n = Math.min(WRITE_PAGES, count - base);
      for (let i = 0; i < n; i++) {
        const got = page(base + i);
        const data = got instanceof Promise ? await got : got;
        if (!data || data.length !== PAGE_SIZE) {
          const where = addresses ? `0x${addresses[base + i].toString(16)}` : `${base + i}`;
          throw new Error(
            `page ${where} of ${what} never arrived (${base + i} of ${count} present)`,
          );
        }
        buf.set(data, i * PAGE_SIZE);
      }
      const chunk = buf.subarray(0, n * PAGE_SIZE);
      let done = 0;
      while (done < chunk.length) done += out.writeSync(chunk.subarray(done));
    }
  } finally {
    out.close();
  }
  return count;
}
