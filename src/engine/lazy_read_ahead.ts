/**
 * Read-ahead for the post-copy relay (lazy_check.ts): the lazy runs of the restored tree (from
 * its pagemap images) fetched from the source's page server in large pipelined requests while
 * the `criu lazy-pages` daemon asks for them one small request at a time. Each page is checked
 * against the manifest when it arrives (by the relay, before it is kept here); a daemon request
 * whose pages are all kept or on their way is answered from here, without a round trip to the
 * source. Pages are dropped once delivered; at most `maxPages` are kept or in flight.
 *
 * Why: the daemon waits for each answer before its next background request (one per process)
 * and restarts at 16 pages on every fault (criu/uffd.c), so a drain is thousands of round trips,
 * and one through the tunnel took 1.2 ms (median; 3–4 ms on average, p90 6–8 ms on a loaded
 * host): about 15% in the source's page server (a tee and a splice of everything before the page
 * in its pipe, criu/page-pipe.c), 40% between the two agents' tunnel ends, 40% on the loopback
 * hop between this relay and its agent's tunnel end. A 256 MiB drain took 70–210 s.
 *
 * @example
 * ```ts
 * const ra = new ReadAhead({ runs: [{ pid: 1, vaddr: 0x10000, nrPages: 4096 }] });
 * const req = ra.next()!; // { pid: 1, vaddr: 0x10000, nrPages: 512 }: ask the source for it
 * ra.arrived(req, 1, 0x10000, 512, answer); // once its answer matched the manifest
 * const pages = await ra.take(1, 0x10000, 16); // the daemon's request, answered from here
 * ```
 *
 * @module
 */

import { type Pagemap, PE_LAZY, PE_PARENT, PE_PRESENT } from "../criu/images/mod.ts";

const PAGE = 4096;

/** A run of consecutive lazy pages of one process. */
export interface LazyRun {
  /** The process (its pid in the images). */
  pid: number;
  /** Address of the first page. */
  vaddr: number;
  /** Pages in the run. */
  nrPages: number;
}

/**
 * The lazy runs of a restore's images: each process's pagemap entries left with the source's
 * page server (PE_LAZY, neither in these images nor in a parent's), in pagemap order.
 *
 * @example
 * ```ts
 * const runs = lazyRunsOf((await readDumpDir(dir, true)).memory);
 * ```
 */
export function lazyRunsOf(memory: { pid: number; pagemap: Pagemap }[]): LazyRun[] {
  return memory.flatMap((m) =>
    m.pagemap.entries
      .filter((e) => (e.flags & PE_LAZY) !== 0 && (e.flags & (PE_PARENT | PE_PRESENT)) === 0)
      .map((e) => ({ pid: m.pid, vaddr: e.vaddr, nrPages: e.nrPages }))
  );
}

/**
 * The default bound of a read-ahead, in pages: 1 GiB, or a quarter of the host's available memory
 * (`MemAvailable`) when that is less, but at least 64 MiB.
 *
 * @example
 * ```ts
 * defaultMaxPages(); // 262144 on a host with 4 GiB or more available
 * ```
 */
export function defaultMaxPages(): number {
  const most = 262_144, least = 16_384;
  try {
    const kib = Number(
      /MemAvailable:\s+(\d+) kB/.exec(Deno.readTextFileSync("/proc/meminfo"))?.[1],
    );
    if (!Number.isFinite(kib) || kib <= 0) return most;
    return Math.max(least, Math.min(most, Math.floor(kib / 4 / 4)));
  } catch {
    return most;
  }
}

/** Options of a {@linkcode ReadAhead}. */
export interface ReadAheadOptions {
  /** The lazy runs, in the order to fetch them. */
  runs: LazyRun[];
  /** Pages one request asks for at most. @default 512 (2 MiB) */
  requestPages?: number;
  /** Requests in flight at most. @default 4 */
  maxRequests?: number;
  /**
   * Pages kept or in flight at most (a bound on memory). A bound below the lazy pages holds the
   * read-ahead to the daemon's pace once reached, and the faults beyond it wait for the source
   * (1 GiB post-copy on loopback: 123 s drain with 256 MiB, 42 s with 1 GiB).
   * @default {@linkcode defaultMaxPages}: 1 GiB, or a quarter of the memory available if less
   */
  maxPages?: number;
}

const NONE = 0, FLIGHT = 1, KEPT = 2, DELIVERED = 3;

interface Span {
  pid: number;
  vaddr: number;
  /** Index of its first page in the page tables. */
  first: number;
  nrPages: number;
}

/** See the module doc. */
export class ReadAhead {
  #spans: Span[];
  #byPid = new Map<number, Span[]>();
  #state: Uint8Array;
  #data: (Uint8Array | undefined)[];
  #cursor = 0;
  #held = 0;
  #requests = 0;
  #stopped = false;
  #waiters = new Set<() => void>();
  readonly #requestPages: number;
  readonly #maxRequests: number;
  readonly #maxPages: number;
  /** Requests this read-ahead sent to the source. */
  sent = 0;

  /** @param opts see {@linkcode ReadAheadOptions} */
  constructor(opts: ReadAheadOptions) {
    this.#requestPages = opts.requestPages ?? 512;
    this.#maxRequests = opts.maxRequests ?? 4;
    this.#maxPages = Math.max(opts.maxPages ?? defaultMaxPages(), this.#requestPages);
    let first = 0;
    this.#spans = opts.runs.filter((r) => r.nrPages > 0).map((r) => {
      const s = { ...r, first };
      first += r.nrPages;
      return s;
    });
    this.#state = new Uint8Array(first);
    this.#data = new Array(first);
    for (const s of this.#spans) {
      const list = this.#byPid.get(s.pid) ?? [];
      list.push(s);
      this.#byPid.set(s.pid, list);
    }
    for (const list of this.#byPid.values()) list.sort((a, b) => a.vaddr - b.vaddr);
  }

  /** The next request to send to the source, or undefined (nothing left, or at a bound). */
  next(): LazyRun | undefined {
    if (this.#stopped || this.#requests >= this.#maxRequests) return undefined;
    // Large requests only (each costs the source a pass over its pipe up to the page).
    const room = this.#maxPages - this.#held;
    if (room < this.#requestPages) return undefined;
    while (this.#cursor < this.#state.length && this.#state[this.#cursor] !== NONE) {
      this.#cursor++;
    }
    if (this.#cursor >= this.#state.length) return undefined;
    const span = this.#spanAt(this.#cursor);
    const end = span.first + span.nrPages;
    let n = 0;
    const limit = Math.min(this.#requestPages, room);
    while (n < limit && this.#cursor + n < end && this.#state[this.#cursor + n] === NONE) n++;
    const at = this.#cursor;
    this.#state.fill(FLIGHT, at, at + n);
    this.#held += n;
    this.#requests++;
    this.sent++;
    this.#cursor += n;
    return { pid: span.pid, vaddr: span.vaddr + (at - span.first) * PAGE, nrPages: n };
  }

  /**
   * The answer to request `asked` (from {@linkcode next}): `nrPages` checked pages at `vaddr`
   * of `pid` (the source may answer fewer than asked; the rest is asked again later).
   */
  arrived(asked: LazyRun, pid: number, vaddr: number, nrPages: number, data: Uint8Array): void {
    this.#requests--;
    for (let i = 0; i < nrPages; i++) {
      const k = this.#index(pid, vaddr + i * PAGE);
      if (k === undefined || this.#state[k] !== FLIGHT) continue;
      this.#state[k] = KEPT;
      this.#data[k] = data.subarray(i * PAGE, (i + 1) * PAGE);
    }
    // What was asked and did not come goes back to be asked again.
    for (let i = 0; i < asked.nrPages; i++) {
      const k = this.#index(asked.pid, asked.vaddr + i * PAGE);
      if (k === undefined || this.#state[k] !== FLIGHT) continue;
      this.#state[k] = NONE;
      this.#held--;
      this.#cursor = Math.min(this.#cursor, k);
    }
    this.#wake();
  }

  /**
   * Whether the daemon's request (`nrPages` at `vaddr` of `pid`) can be answered from here: every
   * page kept or on its way.
   */
  covers(pid: number, vaddr: number, nrPages: number): boolean {
    if (this.#stopped || nrPages <= 0) return false;
    for (let i = 0; i < nrPages; i++) {
      const k = this.#index(pid, vaddr + i * PAGE);
      if (k === undefined) return false;
      const s = this.#state[k];
      if (s !== KEPT && s !== FLIGHT) return false;
    }
    return true;
  }

  /**
   * The pages of a covered request once they are all here (delivered: dropped from here), after
   * `headerBytes` left free for the caller, or undefined when one of them will not come (the
   * read-ahead stopped, or the source answered short): then ask the source directly.
   */
  async take(
    pid: number,
    vaddr: number,
    nrPages: number,
    headerBytes = 0,
  ): Promise<Uint8Array | undefined> {
    for (;;) {
      if (!this.covers(pid, vaddr, nrPages)) return undefined;
      let ready = true;
      for (let i = 0; i < nrPages && ready; i++) {
        ready = this.#state[this.#index(pid, vaddr + i * PAGE)!] === KEPT;
      }
      if (ready) break;
      await new Promise<void>((resolve) => this.#waiters.add(resolve));
    }
    const out = new Uint8Array(headerBytes + nrPages * PAGE);
    for (let i = 0; i < nrPages; i++) {
      const k = this.#index(pid, vaddr + i * PAGE)!;
      out.set(this.#data[k]!, headerBytes + i * PAGE);
      this.#drop(k);
    }
    this.#wake();
    return out;
  }

  /**
   * Pages the daemon got straight from the source (`nrPages` at `vaddr` of `pid`): they are not
   * fetched again (kept copies are dropped). Returns how many were not delivered before.
   */
  deliveredElsewhere(pid: number, vaddr: number, nrPages: number): number {
    let fresh = 0;
    for (let i = 0; i < nrPages; i++) {
      const k = this.#index(pid, vaddr + i * PAGE);
      if (k === undefined) {
        fresh++; // not a lazy page this read-ahead knows of: counted as the relay always did
        continue;
      }
      if (this.#state[k] === DELIVERED) continue;
      fresh++;
      this.#drop(k);
    }
    this.#wake();
    return fresh;
  }

  /** Stop asking and release every waiter (the session ends or was cut). */
  stop(): void {
    this.#stopped = true;
    this.#wake();
  }

  #drop(k: number): void {
    const s = this.#state[k];
    if (s === KEPT || s === FLIGHT) this.#held--;
    this.#state[k] = DELIVERED;
    this.#data[k] = undefined;
  }

  #wake(): void {
    const ws = [...this.#waiters];
    this.#waiters.clear();
    for (const w of ws) w();
  }

  #spanAt(k: number): Span {
    let lo = 0, hi = this.#spans.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.#spans[mid].first <= k) lo = mid;
      else hi = mid - 1;
    }
    return this.#spans[lo];
  }

  #index(pid: number, addr: number): number | undefined {
    const list = this.#byPid.get(pid);
    if (!list) return undefined;
    let lo = 0, hi = list.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = list[mid];
      if (addr < s.vaddr) hi = mid - 1;
      else if (addr >= s.vaddr + s.nrPages * PAGE) lo = mid + 1;
      else return (addr - s.vaddr) % PAGE === 0 ? s.first + (addr - s.vaddr) / PAGE : undefined;
    }
    return undefined;
  }
}
