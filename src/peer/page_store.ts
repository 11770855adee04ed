/**
 * The destination's store of one migration: pages keyed by (pid, address) with their hashes, kept in
 * memory up to a limit and spilled beyond it to `pages.spill` in the migration's directory, plus the
 * image files the source sends, under `images/`. File names are checked against an allow-list, so
 * nothing a peer sends can reach a path outside the migration's directory.
 *
 * @example
 * ```ts
 * const store = new PageStore("/var/lib/u2cm/migrations/m1", { memoryLimitBytes: 64 << 20 });
 * store.putPages(42, [0x7f0000000000], hashes, data);
 * const page = store.get(42, 0x7f0000000000);
 * ```
 *
 * @module
 */
import { PagesImage } from "../engine/pages_image.ts";
import { PeerError } from "./errors.ts";
import { isValidFileName } from "./frames.ts";
import { HASH_BYTES, PAGE_SIZE } from "../native/page_hash.ts";
import { PageIndex } from "./page_index.ts";

/** Options of a {@linkcode PageStore}. */
export interface PageStoreOptions {
  /** Pages kept in memory before spilling to disk, in bytes. @default 256 MiB */
  memoryLimitBytes?: number;
  /** Most bytes (unique pages plus files) the store accepts. @default 1 TiB */
  quotaBytes?: number;
  /**
   * Also lay the pages out as CRIU pages images while they arrive (`image/` in the migration
   * directory), so a restore reads them in place instead of rebuilding. It writes every page a
   * second time (to fresh file pages), which costs the agent about as much CPU as receiving it;
   * agents turn it on when the source asks (`prepare.pagesImage`). @default false
   */
  pagesImage?: boolean;
}

/** One stored page's address and hash. */
export interface PageStoreEntry {
  /** Page address in the source process. */
  addr: number;
  /** The page's 16-byte hash. */
  hash: Uint8Array;
}

/** A stored image file. */
export interface StoredFile {
  /** File name inside `images/`. */
  name: string;
  /** Declared final size. */
  size: number;
  /** Bytes received so far. */
  received: number;
}

const INITIAL_SLOTS = 1024;

/** Pages and image files of one migration. See the module doc. */
export class PageStore {
  /** The migration directory. */
  readonly dir: string;
  /** Where image files are written. */
  readonly imagesDir: string;
  #index = new Map<number, PageIndex>();
  // Where each slot's page lives: in a kept batch buffer (#slotFrame ≥ 0, page #slotAt) or in the
  // spill file (#slotFrame = -1, page #slotAt of the file).
  #slotFrame = new Int32Array(INITIAL_SLOTS);
  #slotAt = new Int32Array(INITIAL_SLOTS);
  #hashes = new Uint8Array(INITIAL_SLOTS * HASH_BYTES);
  #slots = 0;
  #frames: (Uint8Array | undefined)[] = [];
  #frameLive: number[] = [];
  #freeFrames: number[] = [];
  #memoryBytes = 0;
  #memoryLimit: number;
  #spill: Deno.FsFile | undefined;
  #spillPages = 0;
  #spillFree: number[] = [];
  #files = new Map<string, StoredFile>();
  #fileBytes = 0;
  #quota: number;
  #removed = false;

  /**
   * Create the store and its directory (mode 0700).
   *
   * @param dir the migration's directory
   * @param options memory limit and quota
   */
  constructor(dir: string, options: PageStoreOptions = {}) {
    this.dir = dir;
    this.imagesDir = `${dir}/images`;
    this.#memoryLimit = options.memoryLimitBytes ?? 256 * 2 ** 20;
    this.#quota = options.quotaBytes ?? 2 ** 40;
    Deno.mkdirSync(this.imagesDir, { recursive: true, mode: 0o700 });
    // Inside the migration's directory, so that whatever clears a migration clears it too.
    if (options.pagesImage ?? false) this.pagesImage = new PagesImage(`${dir}/image`);
  }

  /** The pages laid out as CRIU pages images, unless turned off. */
  readonly pagesImage?: PagesImage;

  /** Number of distinct pages stored. */
  get pageCount(): number {
    return this.#slots;
  }

  /** Pages held in the spill file rather than in memory. */
  get spilledPages(): number {
    let n = 0;
    for (let i = 0; i < this.#slots; i++) if (this.#slotFrame[i] < 0) n++;
    return n;
  }

  /** Bytes of page batches held in memory. */
  get memoryBytes(): number {
    return this.#memoryBytes;
  }

  /** Bytes stored: distinct pages plus file bytes. */
  get bytesStored(): number {
    return this.#slots * PAGE_SIZE + this.#fileBytes;
  }

  /**
   * Store pages of `pid` (later writes of an address replace earlier ones). The batch is kept
   * whole in memory while the memory limit allows, else written to the spill file. With `adopt`
   * the store keeps `data` itself instead of a copy (the caller must not reuse it). Throws
   * {@linkcode PeerError} "rejected" beyond the quota.
   */
  putPages(
    pid: number,
    addresses: ArrayLike<number>,
    hashes: Uint8Array,
    data: Uint8Array,
    adopt = false,
  ): void {
    this.#live();
    noRoomAsRefusal(this.dir, () => this.#putPages(pid, addresses, hashes, data, adopt));
  }

  #putPages(
    pid: number,
    addresses: ArrayLike<number>,
    hashes: Uint8Array,
    data: Uint8Array,
    adopt: boolean,
  ): void {
    let pages = this.#index.get(pid);
    if (!pages) this.#index.set(pid, pages = new PageIndex());
    const n = addresses.length;
    let fresh = 0;
    for (let i = 0; i < n; i++) if (!pages.has(addresses[i])) fresh++;
    if (this.bytesStored + fresh * PAGE_SIZE > this.#quota) {
      throw new PeerError("rejected", `migration store quota of ${this.#quota} bytes exceeded`);
    }
    this.pagesImage?.put(pid, addresses, data);
    const inMemory = this.#memoryBytes + data.length <= this.#memoryLimit;
    let frame = -1;
    if (inMemory) {
      frame = this.#freeFrames.pop() ?? this.#frames.length;
      this.#frames[frame] = adopt ? data : data.slice();
      this.#frameLive[frame] = 0;
      this.#memoryBytes += data.length;
    }
    let runFrom = 0, runAt = -1, runLen = 0;
    const flushRun = () => {
      if (runLen > 0) {
        this.#writeSpill(runAt, data.subarray(runFrom * PAGE_SIZE, (runFrom + runLen) * PAGE_SIZE));
      }
      runLen = 0;
    };
    for (let i = 0; i < n; i++) {
      const addr = addresses[i];
      let slot = pages.get(addr);
      let spillAt = -1;
      if (slot === undefined) {
        slot = this.#newSlot();
        pages.set(addr, slot);
      } else if (this.#slotFrame[slot] === frame && inMemory) {
        this.#frameLive[frame]--; // the same address twice in one batch
      } else if (this.#slotFrame[slot] >= 0) {
        this.#release(this.#slotFrame[slot]);
      } else {
        spillAt = this.#slotAt[slot];
      }
      for (let b = 0, from = i * HASH_BYTES, to = slot * HASH_BYTES; b < HASH_BYTES; b++) {
        this.#hashes[to + b] = hashes[from + b];
      }
      if (inMemory) {
        if (spillAt >= 0) this.#spillFree.push(spillAt);
        this.#slotFrame[slot] = frame;
        this.#slotAt[slot] = i;
        this.#frameLive[frame]++;
        continue;
      }
      if (spillAt < 0) spillAt = this.#spillFree.pop() ?? this.#spillPages++;
      this.#slotFrame[slot] = -1;
      this.#slotAt[slot] = spillAt;
      if (runLen > 0 && spillAt === runAt + runLen && i === runFrom + runLen) runLen++;
      else {
        flushRun();
        runFrom = i;
        runAt = spillAt;
        runLen = 1;
      }
    }
    flushRun();
    if (inMemory && this.#frameLive[frame] === 0) this.#release(frame, true);
  }

  /** A copy of the page at (`pid`, `addr`), or undefined. */
  get(pid: number, addr: number): Uint8Array | undefined {
    this.#live();
    const slot = this.#index.get(pid)?.get(addr);
    if (slot === undefined) return undefined;
    const frame = this.#slotFrame[slot];
    const at = this.#slotAt[slot] * PAGE_SIZE;
    if (frame >= 0) return this.#frames[frame]!.slice(at, at + PAGE_SIZE);
    const out = new Uint8Array(PAGE_SIZE);
    const f = this.#spill!;
    f.seekSync(at, Deno.SeekMode.Start);
    let o = 0;
    while (o < PAGE_SIZE) {
      const r = f.readSync(out.subarray(o));
      if (r === null) throw new Error("spill file is shorter than its index");
      o += r;
    }
    return out;
  }

  /** The 16-byte hash of the page at (`pid`, `addr`), or undefined. */
  hashOf(pid: number, addr: number): Uint8Array | undefined {
    const slot = this.#index.get(pid)?.get(addr);
    if (slot === undefined) return undefined;
    return this.#hashes.slice(slot * HASH_BYTES, (slot + 1) * HASH_BYTES);
  }

  /** The pids with stored pages, ascending. */
  pids(): number[] {
    return [...this.#index.keys()].sort((a, b) => a - b);
  }

  /** The stored pages of `pid`, sorted by address. */
  entries(pid: number): PageStoreEntry[] {
    const pages = this.#index.get(pid);
    if (!pages) return [];
    const addrs = Float64Array.from(pages.keys()).sort();
    return Array.from(addrs, (addr) => {
      const slot = pages.get(addr)!;
      return { addr, hash: this.#hashes.subarray(slot * HASH_BYTES, (slot + 1) * HASH_BYTES) };
    });
  }

  /**
   * Write a chunk of image file `name` at `offset`. Throws {@linkcode PeerError} "rejected" for an
   * invalid name, a size that changes between chunks, or beyond the quota.
   */
  writeFileChunk(name: string, offset: number, total: number, data: Uint8Array): StoredFile {
    this.#live();
    return noRoomAsRefusal(this.dir, () => this.#writeFileChunk(name, offset, total, data));
  }

  #writeFileChunk(name: string, offset: number, total: number, data: Uint8Array): StoredFile {
    const path = this.filePath(name);
    let file = this.#files.get(name);
    if (file && file.size !== total) {
      throw new PeerError(
        "rejected",
        `image file '${name}' changed size from ${file.size} to ${total}`,
      );
    }
    if (offset + data.length > total) {
      throw new PeerError("rejected", `chunk of '${name}' reaches beyond its size`);
    }
    if (!file) {
      if (this.bytesStored + total > this.#quota) {
        throw new PeerError("rejected", `migration store quota of ${this.#quota} bytes exceeded`);
      }
      file = { name, size: total, received: 0 };
      this.#files.set(name, file);
      this.#fileBytes += total;
      const f = Deno.openSync(path, { write: true, create: true, truncate: true, mode: 0o600 });
      f.truncateSync(total);
      f.close();
    }
    const f = Deno.openSync(path, { write: true });
    try {
      f.seekSync(offset, Deno.SeekMode.Start);
      writeAll(f, data);
    } finally {
      f.close();
    }
    file.received += data.length;
    return { ...file };
  }

  /** The image files received (complete or not). */
  files(): StoredFile[] {
    return [...this.#files.values()].map((f) => ({ ...f }));
  }

  /** The path of image file `name`; throws {@linkcode PeerError} "rejected" for an invalid name. */
  filePath(name: string): string {
    if (!isValidFileName(name)) {
      throw new PeerError("rejected", `invalid image file name ${JSON.stringify(name)}`);
    }
    return `${this.imagesDir}/${name}`;
  }

  /** The contents of image file `name`. */
  readFile(name: string): Uint8Array {
    return Deno.readFileSync(this.filePath(name));
  }

  /** Drop the store and delete its directory (idempotent). */
  remove(): void {
    if (this.#removed) return;
    this.#removed = true;
    this.pagesImage?.close();
    try {
      this.#spill?.close();
    } catch { /* already closed */ }
    this.#spill = undefined;
    this.#frames = [];
    this.#index.clear();
    try {
      Deno.removeSync(this.dir, { recursive: true });
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }

  /** Whether {@linkcode remove} was called. */
  get removed(): boolean {
    return this.#removed;
  }

  #live(): void {
    if (this.#removed) throw new PeerError("aborted", "the migration store was removed");
  }

  #newSlot(): number {
    const slot = this.#slots++;
    if (slot >= this.#slotFrame.length) {
      const grow = <T extends Int32Array | Uint8Array>(a: T, by: number): T => {
        const bigger = new (a.constructor as new (n: number) => T)(a.length * by);
        bigger.set(a);
        return bigger;
      };
      this.#slotFrame = grow(this.#slotFrame, 2);
      this.#slotAt = grow(this.#slotAt, 2);
      this.#hashes = grow(this.#hashes, 2);
    }
    return slot;
  }

  /** One page of batch `frame` is no longer referenced; drop the batch when none is. */
  #release(frame: number, whole = false): void {
    if (!whole && --this.#frameLive[frame] > 0) return;
    this.#memoryBytes -= this.#frames[frame]!.length;
    this.#frames[frame] = undefined;
    this.#freeFrames.push(frame);
  }

  #writeSpill(at: number, bytes: Uint8Array): void {
    this.#spill ??= Deno.openSync(`${this.dir}/pages.spill`, {
      read: true,
      write: true,
      create: true,
      truncate: true,
      mode: 0o600,
    });
    this.#spill.seekSync(at * PAGE_SIZE, Deno.SeekMode.Start);
    writeAll(this.#spill, bytes);
  }
}

/**
 * Run `write`; a file system with no room left (ENOSPC, or EDQUOT: over quota) becomes a
 * {@linkcode PeerError} "rejected" that names the place, so the agent refuses the migration (the
 * source rolls back and says why) instead of dropping the link.
 */
function noRoomAsRefusal<T>(dir: string, write: () => T): T {
  try {
    return write();
  } catch (e) {
    const code = (e as { code?: string }).code;
    const text = String((e as Error)?.message ?? e);
    if (code === "ENOSPC" || code === "EDQUOT" || /os error (28|122)\)/.test(text)) {
      throw new PeerError(
        "rejected",
        `the destination has no room left for this migration under ${dir} (${text}): free disk ` +
          `space there, or raise the agent's --memory-limit, then migrate again`,
      );
    }
    throw e;
  }
}

function writeAll(f: Deno.FsFile, data: Uint8Array): void {
  let o = 0;
  for (let guard = 0; o < data.length && guard < 1_000_000; guard++) {
    o += f.writeSync(data.subarray(o));
  }
}
