/**
 * Reading a CRIU dump directory: the process tree, the inventory, and for each process its
 * pagemap and the pages file that holds its page contents.
 *
 * @module
 */
import { decodeInventory, type Inventory } from "./inventory.ts";
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

/** A dump directory's structure. */
export interface DumpDir {
  /** The directory. */
  dir: string;
  /** The process tree, root first. */
  pstree: PstreeEntry[];
  /** The inventory. */
  inventory: Inventory;
  /** Memory of each process of the tree. */
  memory: DumpedMemory[];
}

/** Read and check the structure of the dump in `dir` (page contents are not loaded). */
export async function readDumpDir(dir: string, lazyDump = false): Promise<DumpDir> {
  const inventory = decodeInventory(await Deno.readFile(`${dir}/inventory.img`));
  const pstree = decodePstree(await Deno.readFile(`${dir}/pstree.img`));
  const memory: DumpedMemory[] = [];
  for (const p of pstree) {
    const pagemapFile = `pagemap-${p.pid}.img`;
    const pagemap = decodePagemap(await Deno.readFile(`${dir}/${pagemapFile}`), pagemapFile);
    const pagesFile = `pages-${pagemap.pagesId}.img`;
    const expected = pagesInFile(pagemap, lazyDump) * PAGE_SIZE;
    const size = await Deno.stat(`${dir}/${pagesFile}`).then((s) => s.size, () => -1);
    if (size !== expected) {
      throw new Error(
        `${dir}/${pagesFile}: ${size < 0 ? "missing" : `${size} bytes`}, ` +
          `its pagemap says ${expected}`,
      );
    }
    memory.push({
      pid: p.pid,
      pagemap,
      pagemapFile,
      pagesFile,
      addresses: storedAddresses(pagemap, lazyDump),
    });
  }
  return { dir, pstree, inventory, memory };
}
