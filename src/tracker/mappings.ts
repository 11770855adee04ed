/**
 * Which mappings the tracker follows, and how a process's mappings are numbered and followed from
 * round to round (appearing, vanishing, growing, moving).
 *
 * @module
 */
import type { MapsEntry } from "./proc.ts";
import type { Mapping, MappingKind } from "./types.ts";

const PSEUDO_SKIPPED = new Set(["[vvar]", "[vvar_vclock]", "[vdso]", "[vsyscall]", "[uprobes]"]);

/**
 * Classify a maps entry as a mapping whose page contents CRIU dumps (private writable memory,
 * shared anonymous memory, memfd), or undefined for mappings the tracker ignores.
 */
export function classifyMapping(entry: MapsEntry): MappingKind | undefined {
  const { perms, path } = entry;
  if (perms[0] !== "r" || PSEUDO_SKIPPED.has(path)) return undefined;
  const shared = perms[3] === "s";
  if (path.startsWith("/memfd:")) return "memfd";
  if (shared) {
    const anonymous = path === "" || path === "/dev/zero (deleted)" || path.startsWith("/SYSV") ||
      path === "[anon_shmem]";
    return anonymous ? "shared-anon" : undefined;
  }
  if (perms[1] !== "w") return undefined;
  if (path === "[heap]") return "heap";
  if (path.startsWith("[stack")) return "stack";
  if (path === "" || path.startsWith("[anon")) return "anon";
  return "file-private";
}

/** The changes of one process's tracked mappings between two rounds. */
export interface MappingChanges {
  /** Mappings new this round, or re-reported because their end moved (same id, new end). */
  added: Mapping[];
  /** Mappings that vanished or moved away. */
  removed: Mapping[];
}

/**
 * The tracked mappings of one process, numbered from a shared id counter. A mapping keeps its id
 * while its start, path and offset stay; a change of end (growth, shrink) or permissions keeps the
 * id and is reported again in `added`; anything else is a removal plus a new mapping.
 */
export class MappingTable {
  #byKey = new Map<string, Mapping>();

  /**
   * @param pid the process
   * @param nextId allocator of ids, unique across the tracking session
   */
  constructor(readonly pid: number, private readonly nextId: () => number) {}

  /** The mappings currently tracked, by ascending address. */
  current(): Mapping[] {
    return [...this.#byKey.values()].sort((a, b) => a.start - b.start);
  }

  /** Replace the table with the tracked entries of a fresh maps read; returns what changed. */
  update(entries: MapsEntry[]): MappingChanges {
    const next = new Map<string, Mapping>();
    const added: Mapping[] = [];
    for (const entry of entries) {
      const kind = classifyMapping(entry);
      if (kind === undefined) continue;
      const key = `${entry.start}:${entry.path}:${entry.inode}:${entry.offset}`;
      const old = this.#byKey.get(key);
      if (old) {
        if (old.end !== entry.end || old.perms !== entry.perms) {
          old.end = entry.end;
          old.perms = entry.perms;
          added.push(old);
        }
        next.set(key, old);
      } else {
        const mapping: Mapping = {
          id: this.nextId(),
          pid: this.pid,
          start: entry.start,
          end: entry.end,
          perms: entry.perms,
          offset: entry.offset,
          path: entry.path,
          kind,
        };
        next.set(key, mapping);
        added.push(mapping);
      }
    }
    const removed = [...this.#byKey.entries()].filter(([k]) => !next.has(k)).map(([, m]) => m);
    this.#byKey = next;
    return { added, removed };
  }

  /** Forget every mapping (the process exited); returns them. */
  clear(): Mapping[] {
    const all = [...this.#byKey.values()];
    this.#byKey.clear();
    return all;
  }
}
