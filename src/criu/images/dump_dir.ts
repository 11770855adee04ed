/**
 * Reading a CRIU dump directory: the process tree, the inventory, for each live process its
 * pagemap and the pages file that holds its page contents, the zombies (CRIU writes only a
 * core image for them), and every shared-memory object (anonymous shared, SysV shm, memfd:
 * `pagemap-shmem-<id>.img` and its own pages file).
 *
 * @example
 * ```ts
 * import { readDumpDir } from "./dump_dir.ts";
 * const dump = await readDumpDir("/dev/shm/dump");
 * console.log(dump.memory.length, "processes,", dump.shmem.length, "shared objects");
 * ```
 *
 * @module
 */
import { decodeCore, TASK_DEAD } from "./core.ts";
import { decodeInventory, type Inventory } from "./inventory.ts";
import {
  decodeMemfdShmids,
  decodeVmas,
  VMA_ANON_SHARED,
  VMA_AREA_MEMFD,
  VMA_AREA_SYSVIPC,
} from "./mm.ts";
import { decodePagemap, type Pagemap, pagesInFile } from "./pagemap.ts";
import { PAGE_SIZE, storedAddresses } from "./pages.ts";
import { decodePstree, type PstreeEntry } from "./pstree.ts";

/** One process's memory in a dump. */
export interface DumpedMemory {
  /** Pid in the tree's namespace (as in pstree.img). */
  pid: number;
  /** Its pagemap. */
  pagemap: Pagemap;
  /** `pagemap-<pid>.img`. */
  pagemapFile: string;
  /** `pages-<id>.img`. */
  pagesFile: string;
  /** Address of each page of the pages file, in file order. */
  addresses: number[];
}

/** One shared-memory object in a dump. */
export interface DumpedShmem {
  /** Its id (`pagemap-shmem-<id>.img`). */
  id: number;
  /** `pagemap-shmem-<id>.img`. */
  pagemapFile: string;
  /** `pages-<n>.img`. */
  pagesFile: string;
  /** Offset into the object of each page of the pages file, in file order. */
  offsets: number[];
}

/** A dump directory's structure. */
export interface DumpDir {
  /** The directory. */
  dir: string;
  /** The process tree, root first. */
  pstree: PstreeEntry[];
  /** The inventory. */
  inventory: Inventory;
  /** Memory of each live process of the tree. */
  memory: DumpedMemory[];
  /** Pids (tree namespace) of the zombies: no memory images. */
  zombies: number[];
  /** The shared-memory objects. */
  shmem: DumpedShmem[];
}

/** Options of {@linkcode readDumpDir}. */
export interface ReadDumpOptions {
  /**
   * Check that each pages file holds what its pagemap says; false at a destination that is
   * about to rebuild them. @default true
   */
  checkSizes?: boolean;
}

/** Read and check the structure of the dump in `dir` (page contents are not loaded). */
export async function readDumpDir(
  dir: string,
  lazyDump = false,
  options: ReadDumpOptions = {},
): Promise<DumpDir> {
  const { checkSizes = true } = options;
  const inventory = decodeInventory(await Deno.readFile(`${dir}/inventory.img`));
  const pstree = decodePstree(await Deno.readFile(`${dir}/pstree.img`));
  const memory: DumpedMemory[] = [];
  const zombies: number[] = [];
  for (const p of pstree) {
    const pagemapFile = `pagemap-${p.pid}.img`;
    const bytes = await readIfExists(`${dir}/${pagemapFile}`);
    if (!bytes) {
      if (await isZombie(dir, p.pid)) {
        zombies.push(p.pid);
        continue;
      }
      throw new Error(`${dir}/${pagemapFile}: missing, and pid ${p.pid} is not a zombie`);
    }
    const pagemap = decodePagemap(bytes, pagemapFile);
    const pagesFile = `pages-${pagemap.pagesId}.img`;
    if (checkSizes) await expectSize(dir, pagesFile, pagesInFile(pagemap, lazyDump));
    memory.push({
      pid: p.pid,
      pagemap,
      pagemapFile,
      pagesFile,
      addresses: storedAddresses(pagemap, lazyDump),
    });
  }
  const shmem: DumpedShmem[] = [];
  for await (const e of Deno.readDir(dir)) {
    const m = /^pagemap-shmem-(\d+)\.img$/.exec(e.name);
    if (!m || !e.isFile) continue;
    const pagemap = decodePagemap(await Deno.readFile(`${dir}/${e.name}`), e.name);
    const pagesFile = `pages-${pagemap.pagesId}.img`;
    if (checkSizes) await expectSize(dir, pagesFile, pagesInFile(pagemap));
    shmem.push({
      id: Number(m[1]),
      pagemapFile: e.name,
      pagesFile,
      offsets: storedAddresses(pagemap),
    });
  }
  shmem.sort((a, b) => a.id - b.id);
  return { dir, pstree, inventory, memory, zombies, shmem };
}

/**
 * The pages files of the tree's processes (named by `pagemap-<pid>.img`; not those of
 * shared-memory objects): the files a destination rebuilds from its page store.
 */
export async function processPagesFiles(dir: string): Promise<Set<string>> {
  const out = new Set<string>();
  for await (const e of Deno.readDir(dir)) {
    if (!e.isFile || !/^pagemap-\d+\.img$/.test(e.name)) continue;
    const pagemap = decodePagemap(await Deno.readFile(`${dir}/${e.name}`), e.name);
    out.add(`pages-${pagemap.pagesId}.img`);
  }
  return out;
}

/** Where one shared-memory object is mapped in one process. */
export interface ShmemMapping {
  /** Pid in the tree's namespace. */
  pid: number;
  /** The shared-memory object (`pagemap-shmem-<id>.img`). */
  shmemId: number;
  /** First byte of the mapping. */
  start: number;
  /** One past its last byte. */
  end: number;
  /** Offset into the object at `start`. */
  pgoff: number;
}

/**
 * The mappings of shared-memory objects in the live processes of a dump (from `mm-<pid>.img`;
 * memfd mappings resolved through files.img and memfd.img).
 */
export async function shmemMappings(dump: DumpDir): Promise<ShmemMapping[]> {
  const files = await readIfExists(`${dump.dir}/files.img`);
  const memfds = await readIfExists(`${dump.dir}/memfd.img`);
  const memfdShmid = files && memfds ? decodeMemfdShmids(files, memfds) : new Map<number, number>();
  const out: ShmemMapping[] = [];
  for (const mem of dump.memory) {
    const vmas = decodeVmas(await Deno.readFile(`${dump.dir}/mm-${mem.pid}.img`));
    for (const v of vmas) {
      let shmemId: number | undefined;
      if (v.status & VMA_AREA_MEMFD) shmemId = memfdShmid.get(v.shmid);
      else if (v.status & (VMA_ANON_SHARED | VMA_AREA_SYSVIPC)) shmemId = v.shmid;
      if (shmemId === undefined) continue;
      out.push({ pid: mem.pid, shmemId, start: v.start, end: v.end, pgoff: v.pgoff });
    }
  }
  return out;
}

/**
 * The shared-memory objects whose every page lies inside some mapping of a live process of the
 * dump, each with all its mappings in pstree and VMA order: such an object's pages can travel
 * and be stored as pages of a process mapping them (at `start + offset - pgoff`), and its pages
 * file be rebuilt from them. Source and destination compute the same answer from the same
 * images; for each page both take the first mapping under which the store holds it.
 */
export async function rebuildableShmem(dump: DumpDir): Promise<Map<number, ShmemMapping[]>> {
  const mappings = await shmemMappings(dump);
  const out = new Map<number, ShmemMapping[]>();
  for (const obj of dump.shmem) {
    const mine = mappings.filter((x) => x.shmemId === obj.id);
    if (obj.offsets.every((o) => mine.some((m) => covers(m, o)))) out.set(obj.id, mine);
  }
  return out;
}

/** Whether mapping `m` maps offset `offset` of its object. */
export function covers(m: ShmemMapping, offset: number): boolean {
  return offset >= m.pgoff && offset < m.pgoff + (m.end - m.start);
}

/** Where offset `offset` of the object a {@linkcode ShmemMapping} maps lies in its process. */
export function shmemAddress(m: ShmemMapping, offset: number): number {
  return m.start + offset - m.pgoff;
}

/**
 * The pages files a destination rebuilds from its page store: the live processes' and, with
 * `shmem`, those of the {@linkcode rebuildableShmem} objects. The rest travel whole.
 */
export async function rebuiltPagesFiles(dir: string, shmem: boolean): Promise<Set<string>> {
  const dump = await readDumpDir(dir, false, { checkSizes: false });
  const out = new Set(dump.memory.map((m) => m.pagesFile));
  if (shmem) {
    const plan = await rebuildableShmem(dump);
    for (const obj of dump.shmem) if (plan.has(obj.id)) out.add(obj.pagesFile);
  }
  return out;
}

/** Whether pid `pid` of the dump in `dir` is a zombie (its core image says TASK_DEAD). */
export async function isZombie(dir: string, pid: number): Promise<boolean> {
  const core = await readIfExists(`${dir}/core-${pid}.img`);
  return core !== undefined && decodeCore(core, `core-${pid}.img`).taskState === TASK_DEAD;
}

async function expectSize(dir: string, pagesFile: string, pages: number): Promise<void> {
  const size = await Deno.stat(`${dir}/${pagesFile}`).then((s) => s.size, () => -1);
  if (size !== pages * PAGE_SIZE) {
    throw new Error(
      `${dir}/${pagesFile}: ${size < 0 ? "missing" : `${size} bytes`}, ` +
        `its pagemap says ${pages * PAGE_SIZE}`,
    );
  }
}

async function readIfExists(path: string): Promise<Uint8Array | undefined> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}
