/**
 * `mm-<pid>.img`: a process's address space as CRIU dumped it — u2cm reads its VMAs
 * (`MmEntry.vmas`, field 14) to find where each shared-memory object is mapped, and, for memfd
 * mappings, `files.img` and `memfd.img` to name the object behind the mapped file.
 *
 * @example
 * ```ts
 * import { decodeVmas, VMA_ANON_SHARED } from "./mm.ts";
 * const shared = decodeVmas(Deno.readFileSync("dump/mm-1.img"))
 *   .filter((v) => (v.status & VMA_ANON_SHARED) !== 0);
 * ```
 *
 * @module
 */
import { expectMagic, Magic, readImage } from "./image.ts";
import { bytesField, decodeMessage, type PbField, uintField } from "./protobuf.ts";

/** VMA status: a private file mapping. */
export const VMA_FILE_PRIVATE = 1 << 6;
/** VMA status: private anonymous memory. */
export const VMA_ANON_PRIVATE = 1 << 9;
/** VMA status: shared anonymous memory (its `shmid` names `pagemap-shmem-<shmid>.img`). */
export const VMA_ANON_SHARED = 1 << 8;
/** VMA status: a SysV shm attachment (`shmid` is the segment's id). */
export const VMA_AREA_SYSVIPC = 1 << 10;
/** VMA status: a memfd mapping (`shmid` is the id of the file in files.img). */
export const VMA_AREA_MEMFD = 1 << 14;

/** One VMA of a dumped address space. */
export interface Vma {
  /** First byte. */
  start: number;
  /** One past the last byte. */
  end: number;
  /** Offset into the mapped object, in bytes. */
  pgoff: number;
  /** Shared-memory id or file id (see the status flags). */
  shmid: number;
  /** VMA_* status flags. */
  status: number;
  /** mmap flags (MAP_SHARED, MAP_PRIVATE, MAP_ANONYMOUS, …). */
  flags: number;
}

/** The VMAs of `mm-<pid>.img` bytes. */
export function decodeVmas(bytes: Uint8Array, name = "mm.img"): Vma[] {
  const image = readImage(bytes, name);
  expectMagic(image, Magic.MM, name);
  if (image.entries.length === 0) throw new Error(`${name}: no MmEntry`);
  const mm = decodeMessage(image.entries[0]);
  return mm.filter((f) => f.field === 14 && f.wire === 2).map((f) => {
    const v = decodeMessage((f as Extract<PbField, { wire: 2 }>).value);
    return {
      start: uintField(v, 1) ?? 0,
      end: uintField(v, 2) ?? 0,
      pgoff: uintField(v, 3) ?? 0,
      shmid: uintField(v, 4) ?? 0,
      status: uintField(v, 7) ?? 0,
      flags: uintField(v, 6) ?? 0,
    };
  });
}

/**
 * The shared-memory id behind each memfd file: file id (files.img, `FileEntry.memfd`) →
 * `MemfdInodeEntry.shmid` (memfd.img), matched through the inode id.
 */
export function decodeMemfdShmids(filesImg: Uint8Array, memfdImg: Uint8Array): Map<number, number> {
  const files = readImage(filesImg, "files.img");
  expectMagic(files, Magic.FILES, "files.img");
  const inodes = readImage(memfdImg, "memfd.img");
  expectMagic(inodes, Magic.MEMFD_INODE, "memfd.img");
  const shmidOfInode = new Map<number, number>();
  for (const e of inodes.entries) {
    const f = decodeMessage(e);
    const inode = uintField(f, 7);
    const shmid = uintField(f, 5);
    if (inode !== undefined && shmid !== undefined) shmidOfInode.set(inode, shmid);
  }
  const out = new Map<number, number>();
  for (const e of files.entries) {
    const f = decodeMessage(e);
    const memfd = bytesField(f, 20);
    const id = uintField(f, 2);
    if (!memfd || id === undefined) continue;
    const shmid = shmidOfInode.get(uintField(decodeMessage(memfd), 5) ?? -1);
    if (shmid !== undefined) out.set(id, shmid);
  }
  return out;
}
