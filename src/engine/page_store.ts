/**
 * An in-memory page store for {@linkcode LocalChannel} (same-machine and test migrations): pages
 * of each process by address with their hashes, newest write wins. Peer agents keep their own
 * store (src/peer), which spills to disk beyond a memory limit.
 *
 * @module
 */
import { pageHashes } from "../native/page_hash.ts";
import type { PageStoreView } from "./channel.ts";
import { PagesImage } from "./pages_image.ts";

const PAGE = 4096;

/** Options of {@linkcode LocalPageStore}. */
export interface LocalPageStoreOptions {
  /**
   * Also keep the pages laid out as CRIU pages images in this directory (a
   * {@linkcode PagesImage}), for a restore without a rebuild. @default none
   */
  imageDir?: string;
}

/** Pages of one migration, in memory. */
export class LocalPageStore implements PageStoreView {
  readonly #pages = new Map<number, Map<number, { data: Uint8Array; hash: Uint8Array }>>();
  /** The pages laid out as pages images, when asked for. */
  readonly pagesImage?: PagesImage;

  /** @param options where to keep pages images as well */
  constructor(options: LocalPageStoreOptions = {}) {
    if (options.imageDir) this.pagesImage = new PagesImage(options.imageDir);
  }

  /** Store pages of `pid`; `hashes` (16 bytes per page) are computed when absent. */
  put(pid: number, addresses: ArrayLike<number>, data: Uint8Array, hashes?: Uint8Array): void {
    const n = addresses.length;
    if (data.length !== n * PAGE) throw new RangeError(`${n} addresses but ${data.length} bytes`);
    const h = hashes ?? pageHashes(data);
    let map = this.#pages.get(pid);
    if (!map) this.#pages.set(pid, map = new Map());
    this.pagesImage?.put(pid, addresses, data);
    const copy = data.slice();
    const hcopy = h.slice(0, n * 16);
    for (let i = 0; i < n; i++) {
      map.set(addresses[i], {
        data: copy.subarray(i * PAGE, (i + 1) * PAGE),
        hash: hcopy.subarray(i * 16, (i + 1) * 16),
      });
    }
  }

  /** A page's contents, or undefined. */
  get(pid: number, addr: number): Uint8Array | undefined {
    return this.#pages.get(pid)?.get(addr)?.data;
  }

  /** A page's 16-byte hash, or undefined. */
  hashOf(pid: number, addr: number): Uint8Array | undefined {
    return this.#pages.get(pid)?.get(addr)?.hash;
  }

  /** Every stored hash of `pid`: address → hash. */
  hashes(pid: number): Map<number, Uint8Array> {
    const out = new Map<number, Uint8Array>();
    for (const [addr, e] of this.#pages.get(pid) ?? []) out.set(addr, e.hash);
    return out;
  }

  /** The pids with pages. */
  pids(): number[] {
    return [...this.#pages.keys()].sort((a, b) => a - b);
  }

  /** Drop every page. */
  clear(): void {
    this.#pages.clear();
    this.pagesImage?.close();
  }
}
