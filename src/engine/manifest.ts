/**
 * The final page manifest: a 16-byte hash for every page of every private and shared mapping
 * of the frozen tree, as CRIU dumped it. The source records each hash when it reads the page
 * for sending (no second read); the destination decodes the file and checks the images it
 * assembled, then the restored tree, against it (verify.ts).
 *
 * @example
 * ```ts
 * import { decodeManifest, ManifestBuilder } from "./manifest.ts";
 * const b = new ManifestBuilder();
 * b.add("process", 1, [0x400000], new Uint8Array(16));
 * const m = decodeManifest(b.encode());
 * console.log(m.pages); // 1
 * ```
 *
 * @module
 */
import { decodeBase64, encodeBase64 } from "../util/base64.ts";
import { MAX_MANIFEST_PAGES, type PageManifestJson, PageManifestSchema } from "./contract.ts";

const PAGE = 4096;
const HASH = 16;

/** The pages of one process (addresses) or shared-memory object (offsets) and their hashes. */
export interface PageList {
  /** Addresses or offsets, ascending. */
  addresses: number[];
  /** 16 bytes per page, in the same order. */
  hashes: Uint8Array;
}

/** A decoded manifest. */
export interface PageManifest {
  /** Live processes by pid inside the tree's namespace. */
  processes: Map<number, PageList>;
  /** Shared-memory objects by id. */
  shmem: Map<number, PageList>;
  /** Pages named in all. */
  pages: number;
}

/** What a manifest entry describes. */
export type ManifestKind = "process" | "shmem";

/** Collects page hashes as the source reads pages, and encodes the manifest file. */
export class ManifestBuilder {
  readonly #lists = { process: new Map<number, Parts>(), shmem: new Map<number, Parts>() };
  #pages = 0;

  /** Pages added so far. */
  get pages(): number {
    return this.#pages;
  }

  /**
   * Add pages of process `id` (ns pid) or shared-memory object `id`, in ascending order and
   * after those added before for the same id; `hashes` holds 16 bytes per page.
   */
  add(kind: ManifestKind, id: number, addresses: ArrayLike<number>, hashes: Uint8Array): void {
    if (hashes.length < addresses.length * HASH) {
      throw new RangeError(`${addresses.length} pages but ${hashes.length} bytes of hashes`);
    }
    let parts = this.#lists[kind].get(id);
    if (!parts) this.#lists[kind].set(id, parts = { addresses: [], hashes: [] });
    for (let i = 0; i < addresses.length; i++) parts.addresses.push(addresses[i]);
    parts.hashes.push(hashes.slice(0, addresses.length * HASH));
    this.#pages += addresses.length;
  }

  /** The manifest file's bytes (JSON, see {@linkcode PageManifestSchema}). */
  encode(): Uint8Array {
    const list = (parts: Parts) => ({
      runs: runsOf(parts.addresses),
      hashes: encodeBase64(concat(parts.hashes)),
    });
    const json: PageManifestJson = {
      v: 1,
      processes: [...this.#lists.process].map(([pid, p]) => ({ pid, ...list(p) })),
      shmem: [...this.#lists.shmem].map(([id, p]) => ({ id, ...list(p) })),
    };
    return new TextEncoder().encode(JSON.stringify(json));
  }
}

interface Parts {
  addresses: number[];
  hashes: Uint8Array[];
}

/** Raised for a manifest file that is malformed or inconsistent. */
export class ManifestError extends Error {
  /** @param message what is wrong */
  constructor(message: string) {
    super(`page manifest: ${message}`);
    this.name = "ManifestError";
  }
}

/** Decode and check a manifest file (zod schema, then runs against hashes). */
export function decodeManifest(bytes: Uint8Array): PageManifest {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new ManifestError("not JSON");
  }
  const parsed = PageManifestSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ManifestError(`invalid at ${issue?.path.join(".")}: ${issue?.message}`);
  }
  let pages = 0;
  const lists = (entries: { runs: [number, number][]; hashes: string }[], what: string) =>
    entries.map((e) => {
      const addresses: number[] = [];
      for (const [start, count] of e.runs) {
        if (addresses.length > 0 && start <= addresses[addresses.length - 1]) {
          throw new ManifestError(`${what}: runs not ascending at 0x${start.toString(16)}`);
        }
        pages += count;
        if (pages > MAX_MANIFEST_PAGES) throw new ManifestError("too many pages");
        for (let i = 0; i < count; i++) addresses.push(start + i * PAGE);
      }
      const hashes = decodeBase64(e.hashes);
      if (hashes.length !== addresses.length * HASH) {
        throw new ManifestError(
          `${what}: ${addresses.length} pages but ${hashes.length} hash bytes`,
        );
      }
      return { addresses, hashes };
    });
  const m = parsed.data;
  const processes = new Map<number, PageList>();
  lists(m.processes, "process").forEach((l, i) => setOnce(processes, m.processes[i].pid, l));
  const shmem = new Map<number, PageList>();
  lists(m.shmem, "shmem").forEach((l, i) => setOnce(shmem, m.shmem[i].id, l));
  return { processes, shmem, pages };
}

function setOnce(map: Map<number, PageList>, id: number, list: PageList): void {
  if (map.has(id)) throw new ManifestError(`id ${id} listed twice`);
  map.set(id, list);
}

/** Runs of consecutive pages of sorted `addresses`. */
function runsOf(addresses: number[]): [number, number][] {
  const runs: [number, number][] = [];
  for (const a of addresses) {
    const last = runs[runs.length - 1];
    if (last && a === last[0] + last[1] * PAGE) last[1]++;
    else runs.push([a, 1]);
  }
  return runs;
}

function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
