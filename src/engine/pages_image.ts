/**
 * The destination's pages images, kept current while pre-copy runs: one file per process in
 * which each page gets a slot on its first arrival and is patched in place on every later one.
 * Pre-copy's first round sends a process's pages in ascending address order, so the leading
 * slots of the file ascend — exactly the layout of a CRIU `pages-N.img` — and the restore can use
 * the file as it is (see {@linkcode composeImages} in lazy_images.ts): the freeze patches only
 * the final delta, nothing is rebuilt page by page.
 *
 * @module
 */

import { pageHashes } from "../native/page_hash.ts";

const PAGE = 4096;
const HASH = 16;

/** One process's slot file. */
interface ProcessImage {
  file: Deno.FsFile;
  path: string;
  /** Each slot's 16-byte page hash, taken from the bytes written (capacity grows by doubling). */
  hashes: Uint8Array;
  /** Address → slot. */
  slots: Map<number, number>;
  /** 1 for each slot patched after its first arrival (a page the workload kept writing). */
  rewritten: Uint8Array;
  /** Address of each slot, in slot order. */
  addresses: number[];
  /** How many leading slots hold strictly ascending addresses. */
  ascending: number;
}

/** What {@linkcode PagesImage.layout} reports about one process. */
export interface ImageLayout {
  /** The slot file (a valid pages image for its ascending prefix). */
  path: string;
  /** Addresses of the ascending leading slots (slot i holds addresses[i]). */
  ascending: ArrayLike<number>;
  /** The hash of what slot i holds (16 bytes each), for every slot of the file. */
  hashOfSlot(slot: number): Uint8Array;
  /** The hashes of slots 0 … count - 1, in order (a view: copy it to keep it). */
  slotHashes?(count: number): Uint8Array;
  /**
   * Whether slot i was patched after its first arrival: its page was sent again, dirtied while
   * pre-copy ran (the workload's working set). @default never
   */
  rewritten?(slot: number): boolean;
}

/**
 * Slot files of one migration's pages, one per process (pid as CRIU names it).
 *
 * @example
 * ```ts
 * const image = new PagesImage("/var/lib/u2cm/migrations/m1/image");
 * image.put(1, [0x400000, 0x401000], new Uint8Array(8192));
 * image.layout(1); // { path: ".../pages-1.slots", ascending: [0x400000, 0x401000] }
 * image.close();
 * ```
 */
export class PagesImage {
  readonly #procs = new Map<number, ProcessImage>();
  #closed = false;

  /** @param dir directory for the slot files (created, mode 0700) */
  constructor(readonly dir: string) {
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  /**
   * Write pages of `pid` into their slots (new pages get the next slot). Each slot's hash is
   * taken here from the bytes written, never from what a sender claims.
   */
  put(pid: number, addresses: ArrayLike<number>, data: Uint8Array): void {
    if (this.#closed) return;
    const n = addresses.length;
    if (data.length < n * PAGE) throw new RangeError(`${n} addresses but ${data.length} bytes`);
    const p = this.#proc(pid);
    const hashes = pageHashes(data.subarray(0, n * PAGE));
    // Write runs of consecutive slots with one write each.
    let runFrom = 0, runSlot = -1, runLen = 0;
    const flush = () => {
      if (runLen === 0) return;
      writeAt(p.file, runSlot * PAGE, data.subarray(runFrom * PAGE, (runFrom + runLen) * PAGE));
      runLen = 0;
    };
    for (let i = 0; i < n; i++) {
      const addr = addresses[i];
      let slot = p.slots.get(addr);
      if (slot === undefined) {
        slot = p.addresses.length;
        p.slots.set(addr, slot);
        p.addresses.push(addr);
        if (p.ascending === slot && (slot === 0 || p.addresses[slot - 1] < addr)) p.ascending++;
        if ((slot + 1) * HASH > p.hashes.length) {
          const grown = new Uint8Array(Math.max(p.hashes.length * 2, (slot + 1) * HASH, 4096));
          grown.set(p.hashes);
          p.hashes = grown;
          const marks = new Uint8Array(grown.length / HASH);
          marks.set(p.rewritten);
          p.rewritten = marks;
        }
      } else p.rewritten[slot] = 1;
      p.hashes.set(hashes.subarray(i * HASH, (i + 1) * HASH), slot * HASH);
      if (runLen > 0 && slot === runSlot + runLen && i === runFrom + runLen) runLen++;
      else {
        flush();
        runFrom = i;
        runSlot = slot;
        runLen = 1;
      }
    }
    flush();
  }

  /** The slot file of `pid` and its ascending prefix, or undefined when it has no pages. */
  layout(pid: number): ImageLayout | undefined {
    const p = this.#procs.get(pid);
    if (!p || this.#closed) return undefined;
    return {
      path: p.path,
      ascending: p.addresses.slice(0, p.ascending),
      hashOfSlot: (slot) => p.hashes.subarray(slot * HASH, (slot + 1) * HASH),
      rewritten: (slot) => p.rewritten[slot] === 1,
      slotHashes: (count) => p.hashes.subarray(0, count * HASH),
    };
  }

  /** Close the files (the directory belongs to the caller). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const p of this.#procs.values()) {
      try {
        p.file.close();
      } catch { /* closed */ }
    }
    this.#procs.clear();
  }

  #proc(pid: number): ProcessImage {
    let p = this.#procs.get(pid);
    if (p) return p;
    const path = `${this.dir}/pages-${pid}.slots`;
    const file = Deno.openSync(path, { read: true, write: true, create: true, truncate: true });
    p = {
      file,
      path,
      hashes: new Uint8Array(0),
      slots: new Map(),
      rewritten: new Uint8Array(0),
      addresses: [],
      ascending: 0,
    };
    this.#procs.set(pid, p);
    return p;
  }
}

function writeAt(file: Deno.FsFile, offset: number, bytes: Uint8Array): void {
  file.seekSync(offset, Deno.SeekMode.Start);
  let done = 0;
  while (done < bytes.length) done += file.writeSync(bytes.subarray(done));
}
