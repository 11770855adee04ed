/**
 * The content-hash backend: reads every resident page of the tracked mappings with
 * process_vm_readv (in the native shim, 1 MiB at a time), hashes it (128 bits), and reports the
 * pages whose hash changed. Works on every kernel, including those without soft-dirty (arm64).
 *
 * @module
 */
import { hashDiff, residentMap } from "../native/ffi.ts";
import {
  CHUNK_PAGES,
  type MappingScan,
  PAGE_SIZE,
  type PageBackend,
  type TrackedProcess,
} from "./backend.ts";
import type { Mapping } from "./types.ts";

interface ChunkState {
  hashes: BigUint64Array;
  known: Uint8Array;
}

/** Options of {@linkcode HashBackend}. */
export interface HashBackendOptions {
  /** Use PAGEMAP_SCAN to find resident pages (else a bulk pagemap read). */
  usePagemapScan: boolean;
  /** Pages per process_vm_readv call. @default 256 */
  batchPages?: number;
}

/** Finds changed pages by content hash. */
export class HashBackend implements PageBackend {
  readonly name = "hash" as const;
  #state = new Map<number, Map<number, ChunkState>>();
  #present = new Uint8Array(CHUNK_PAGES);
  #scratch = new Uint32Array(CHUNK_PAGES);
  #dirty = new Uint32Array(CHUNK_PAGES);
  #stats = new BigUint64Array(3);
  #readBuffer: Uint8Array;
  #useScan: boolean;
  /** Pages read and hashed since construction. */
  pagesHashed = 0;

  /** @param options residency source and batch size */
  constructor(options: HashBackendOptions) {
    this.#useScan = options.usePagemapScan;
    this.#readBuffer = new Uint8Array((options.batchPages ?? 256) * PAGE_SIZE);
  }

  scanMapping(process: TrackedProcess, mapping: Mapping, isNew: boolean): MappingScan {
    let chunks = this.#state.get(mapping.id);
    if (!chunks || isNew) {
      chunks = new Map();
      this.#state.set(mapping.id, chunks);
    }
    const totalPages = (mapping.end - mapping.start) / PAGE_SIZE;
    const parts: Uint32Array[] = [];
    let resident = 0;
    let dirtyCount = 0;
    for (const index of chunks.keys()) {
      if (index * CHUNK_PAGES >= totalPages) chunks.delete(index); // the mapping shrank
    }
    for (let base = 0, index = 0; base < totalPages; base += CHUNK_PAGES, index++) {
      const npages = Math.min(CHUNK_PAGES, totalPages - base);
      const addr = mapping.start + base * PAGE_SIZE;
      const present = this.#present.subarray(0, npages);
      const count = residentMap(
        process.pagemapFd,
        addr,
        npages,
        this.#useScan,
        present,
        this.#scratch,
      );
      resident += count;
      let chunk = chunks.get(index);
      if (count === 0 && !chunk) continue;
      if (!chunk || chunk.known.length !== npages) {
        chunk = resizeChunk(chunk, npages);
        chunks.set(index, chunk);
      }
      const n = hashDiff(process.pid, addr, npages, {
        present,
        hashes: chunk.hashes,
        known: chunk.known,
        dirty: this.#dirty,
        readBuffer: this.#readBuffer,
        stats: this.#stats,
      });
      this.pagesHashed += Number(this.#stats[0]);
      if (n > 0) {
        const part = this.#dirty.slice(0, n);
        if (base > 0) { for (let i = 0; i < n; i++) part[i] += base; }
        parts.push(part);
        dirtyCount += n;
      }
    }
    return { dirty: concat(parts, dirtyCount), resident };
  }

  endRound(_process: TrackedProcess): void {}

  forgetMapping(mappingId: number): void {
    this.#state.delete(mappingId);
  }
}

function resizeChunk(old: ChunkState | undefined, npages: number): ChunkState {
  const chunk = { hashes: new BigUint64Array(npages * 2), known: new Uint8Array(npages) };
  if (old) {
    const keep = Math.min(npages, old.known.length);
    chunk.known.set(old.known.subarray(0, keep));
    chunk.hashes.set(old.hashes.subarray(0, keep * 2));
  }
  return chunk;
}

function concat(parts: Uint32Array[], total: number): Uint32Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint32Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
