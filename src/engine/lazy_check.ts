/**
 * Post-copy pages checked as they arrive: a loopback relay between the destination's
 * `criu lazy-pages` daemon and the source's page server (directly, or the peer channel's tunnel
 * end) that reads CRIU's page-server protocol on the way. Each page of every answer is hashed
 * and compared with the source's manifest before the daemon sees it (a page touching a thread's
 * rseq area or dead stack by its hash with those bytes zeroed, as the source hashed it:
 * page_allowance.ts); a page that differs, or
 * one the manifest does not name, is never delivered: the relay cuts both connections and calls
 * `onMismatch` (the restored copy must not run on memory that is not the workload's).
 *
 * The protocol (criu/page-xfer.c): the daemon sends `struct page_server_iov` commands
 * (`PS_IOV_GET` for a fault or a background fetch, `PS_IOV_CLOSE` at the end); the server answers
 * each GET with an iov (the pages' address, count and pid) followed by the pages, and the CLOSE
 * with a 4-byte status. The iov is 24 bytes before CRIU 4.2 and 32 from 4.2 on
 * ({@linkcode pageServerIovBytes}).
 *
 * Given the lazy runs (`readAhead`), the relay also fetches them ahead of the daemon once the
 * tree resumed ({@linkcode lazyCheckResumed}): large pipelined requests, every page checked as
 * it arrives, the daemon's requests answered from what arrived (lazy_relay.ts,
 * lazy_read_ahead.ts). The daemon asks one small request at a time (16 pages after each fault)
 * and each answer through the tunnel took milliseconds: a 256 MiB drain took minutes.
 *
 * @example
 * ```ts
 * const check = await startLazyCheck({ upstream, expected, criuVersion: "4.1.1" });
 * // criu lazy-pages connects to 127.0.0.1:check.port instead of upstream
 * const stats = await check.done; // once the daemon closed its session
 * ```
 *
 * @module
 */
import { pageHashes } from "../native/page_hash.ts";
import { pageServerIovBytes } from "../criu/page_server.ts";
import type { LazyCheckReport } from "./contract.ts";
import type { PageManifest } from "./manifest.ts";
import { type Area, areasOn, maskedPageHash } from "./page_allowance.ts";
import { type LazyRun, ReadAhead } from "./lazy_read_ahead.ts";
import { relayAnswers, relayCommands, RelaySession } from "./lazy_relay.ts";
import { lowerBound } from "../util/lower_bound.ts";

const PAGE = 4096;
const HASH = 16;

/** What the relay saw; `mismatch` set when it refused a page. */
export interface LazyCheckStats {
  /** GET requests the daemon sent (faults and background fetches). */
  requests: number;
  /** Pages that arrived and matched the manifest. */
  checkedPages: number;
  /** Pages the manifest expects to arrive lazily. */
  expectedPages: number;
  /** Whether the daemon ended its session (CLOSE answered). */
  closed: boolean;
  /** Why a page was refused, when one was. */
  mismatch?: string;
}

/** Options of {@linkcode startLazyCheck}. */
export interface LazyCheckOptions {
  /** Where the source's page server is reached (a loopback tunnel end, or the source). */
  upstream: { address: string; port: number };
  /**
   * The manifest: the lazy pages must hash to its values. A promise (the destination checks the
   * eager images while CRIU restores, the manifest is decoded by that check) holds the relay:
   * it accepts the daemon's session only once the promise resolved, so no page is fetched from
   * the source or delivered before its hash is here; a rejection ends the relay without a
   * session (nothing is ever delivered).
   */
  manifest: PageManifest | Promise<PageManifest>;
  /** Pages expected to arrive lazily (for the report); a promise, as `manifest`. */
  expectedPages: number | Promise<number>;
  /**
   * The areas of each process whose bytes may legitimately differ (page_allowance.ts's
   * `allowedAreas` of the dump): a page touching one is compared by its masked hash, as the
   * source hashed it. @default none
   */
  allowance?: Map<number, Area[]>;
  /** The CRIU version of the daemon (the iov layout follows it). */
  criuVersion?: string;
  /** Called once when a page is refused. */
  onMismatch?: (why: string) => void;
  /**
   * The lazy runs of the restored tree (its pagemap's lazy entries): the relay fetches them
   * ahead of the daemon in large pipelined requests, checks each page as it arrives, and answers
   * the daemon's requests for them without a round trip to the source (lazy_read_ahead.ts).
   * @default none: every request goes to the source
   */
  readAhead?: LazyRun[];
}

/** A running relay. */
export interface LazyCheck {
  /** The loopback port the daemon connects to. */
  port: number;
  /** The figures so far. */
  stats(): LazyCheckStats;
  /** Resolves with the figures when the daemon's session ended (or was cut). */
  done: Promise<LazyCheckStats>;
  /** Stop listening and cut any session. */
  close(): void;
  /**
   * Start fetching the lazy runs ahead of the daemon (idempotent; with `readAhead` only). The
   * destination calls it once the tree resumed: before, the restore and the commit would share
   * the link and the CPUs with the read-ahead (the downtime would grow). (A local page server,
   * local_page_server.ts, has none.)
   */
  startReadAhead?(): void;
}

/** Start the relay on a free loopback port; it serves the daemon's one session. */
export function startLazyCheck(options: LazyCheckOptions): LazyCheck {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const iovBytes = pageServerIovBytes(options.criuVersion);
  const stats: LazyCheckStats = {
    requests: 0,
    checkedPages: 0,
    expectedPages: 0,
    closed: false,
  };
  let closed = false;
  let closing = () => {};
  const closedEarly = new Promise<never>((_, reject) =>
    closing = () => reject(new Error("closed"))
  );
  closedEarly.catch(() => {});
  const conns: Deno.Conn[] = [];
  let stopReadAhead = () => {};
  let readAheadWanted = false;
  let beginReadAhead = () => {};
  const cut = () => {
    stopReadAhead();
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
  };
  const done = (async () => {
    let manifest: PageManifest;
    let daemon: Deno.Conn;
    try {
      // Until the manifest is here the daemon's connection waits in the listen backlog: none
      // of its requests is read, no page is fetched or delivered.
      [manifest, stats.expectedPages] = await Promise.race([
        Promise.all([options.manifest, options.expectedPages]),
        closedEarly,
      ]);
      if (closed) throw new Error("closed");
      daemon = await listener.accept();
    } catch {
      return stats; // closed before the daemon came, or no manifest came
    } finally {
      try {
        listener.close();
      } catch { /* closed */ }
    }
    conns.push(daemon);
    let source: Deno.Conn;
    try {
      source = await Deno.connect({
        hostname: options.upstream.address,
        port: options.upstream.port,
      });
    } catch (e) {
      stats.mismatch = `cannot reach the source's page server: ${(e as Error).message}`;
      cut();
      return stats;
    }
    conns.push(source);
    // Small requests and answers, one at a time: no Nagle delay on either hop.
    for (const c of [daemon, source] as Deno.TcpConn[]) c.setNoDelay(true);
    const refuse = (why: string) => {
      if (stats.mismatch) return;
      stats.mismatch = why;
      options.onMismatch?.(why);
      cut();
    };
    const readAhead = options.readAhead?.length
      ? new ReadAhead({ runs: options.readAhead })
      : undefined;
    const session = new RelaySession({ daemon, source, iovBytes, stats, readAhead, cut });
    stopReadAhead = () => readAhead?.stop();
    beginReadAhead = () => session.pump(true);
    if (readAheadWanted) beginReadAhead();
    const up = relayCommands(session, () => session.closing = true);
    const allowance = options.allowance ?? new Map<number, Area[]>();
    const check = (pid: number, vaddr: number, data: Uint8Array) =>
      checkPages(manifest, allowance.get(pid) ?? [], pid, vaddr, data);
    const down = relayAnswers(session, check, refuse);
    // Once either direction ends the session is over: close both ends (a half-close is not
    // enough for the page server, which waits for the connection to close).
    await Promise.race([up, down]).catch(() => {});
    if (stats.closed) await up.catch(() => {}); // the daemon closes once it has the status
    cut();
    await Promise.allSettled([up, down]);
    return stats;
  })();
  return {
    port,
    stats: () => ({ ...stats }),
    done,
    close: () => {
      closed = true;
      closing();
      try {
        listener.close();
      } catch { /* closed */ }
      cut();
    },
    startReadAhead: () => {
      readAheadWanted = true;
      beginReadAhead();
    },
  };
}

/**
 * Undefined when every page of `data` (process `pid`, from `vaddr` on) matches its manifest
 * hash, else why not (the manifest's addresses are searched in place). Shared with the local page server (local_page_server.ts).
 *
 * @example
 * ```ts
 * const why = checkPages(manifest, allowance.get(pid) ?? [], pid, vaddr, data);
 * ```
 */
export function checkPages(
  manifest: PageManifest,
  areas: Area[],
  pid: number,
  vaddr: number,
  data: Uint8Array,
): string | undefined {
  const list = manifest.processes.get(pid);
  if (!list) return `pid ${pid} is not in the manifest`;
  // The manifest's addresses ascend: one binary search finds the run's first page, the next
  // ones follow it (no per-process lookup table: building one for a 2 GiB tree's half a
  // million pages cost ~0.1–0.3 s on the first request, inside the restore's first fault).
  const addrs = list.addresses;
  const lo = lowerBound(addrs, vaddr);
  const hashes = pageHashes(data);
  for (let i = 0; i < data.length / PAGE; i++) {
    const addr = vaddr + i * PAGE;
    const k = lo + i;
    if (k >= addrs.length || addrs[k] !== addr) {
      return `pid ${pid}: page 0x${addr.toString(16)} is not in the manifest`;
    }
    const on = areasOn(areas, addr);
    const got = on.length
      ? maskedPageHash(data.subarray(i * PAGE, (i + 1) * PAGE), addr, on)
      : hashes.subarray(i * HASH, (i + 1) * HASH);
    for (let b = 0; b < HASH; b++) {
      if (got[b] !== list.hashes[k * HASH + b]) {
        return `pid ${pid}: page 0x${addr.toString(16)} differs from the manifest`;
      }
    }
  }
  return undefined;
}

// The relay's reader and writer (lazy_relay.ts), shared with the local page server.
export { ExactReader, writeAll } from "./lazy_relay.ts";

/** Running checks of this agent process, by migration id (what a source's query reads). */
const running = new Map<
  string,
  { check: LazyCheck; daemonExit: Promise<number>; logFile: string; exited: boolean }
>();

/**
 * Keep a check for migration `id` until its report is read (or a minute after its daemon
 * exited): `daemonExit` is the lazy-pages daemon's exit, `logFile` its log (faults are counted
 * from it).
 */
export function registerLazyCheck(
  id: string,
  check: LazyCheck,
  daemonExit: Promise<number>,
  logFile: string,
): void {
  const entry = { check, daemonExit, logFile, exited: false };
  running.set(id, entry);
  daemonExit.finally(() => {
    entry.exited = true;
    setTimeout(() => {
      if (running.get(id) === entry) running.delete(id);
    }, 60_000);
  });
}

/**
 * The end of migration `id`'s running check (its figures once the daemon's session ended);
 * undefined when this process runs none for it.
 *
 * @example
 * ```ts
 * lazyCheckDone("m1")?.then((s) => s.mismatch && console.log("refused:", s.mismatch));
 * ```
 */
export function lazyCheckDone(id: string): Promise<LazyCheckStats> | undefined {
  return running.get(id)?.check.done;
}

/**
 * Migration `id`'s tree resumed here: its check (if this process runs one) starts its read-ahead.
 *
 * @example
 * ```ts
 * lazyCheckResumed("m1"); // after SIGCONT of the restored tree
 * ```
 */
export function lazyCheckResumed(id: string): void {
  running.get(id)?.check.startReadAhead?.();
}

/**
 * The report of migration `id`'s post-copy check, waiting up to `waitMs` for the daemon's
 * session and exit; undefined when this process ran no check for it.
 *
 * @example
 * ```ts
 * const report = await lazyCheckReport("m1", 5000); // { requests, checkedPages, … }
 * ```
 */
export async function lazyCheckReport(
  id: string,
  waitMs: number,
): Promise<LazyCheckReport | undefined> {
  const entry = running.get(id);
  if (!entry) return undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<void>((r) => timer = setTimeout(r, waitMs));
  await Promise.race([entry.check.done.then(() => entry.daemonExit), late]).catch(() => {});
  clearTimeout(timer);
  const s = entry.check.stats();
  let faults: number | undefined;
  if (entry.exited) {
    const log = await Deno.readTextFile(entry.logFile).catch(() => "");
    faults = log.match(/#PF at /g)?.length ?? 0;
  }
  return {
    requests: s.requests,
    checkedPages: s.checkedPages,
    expectedPages: s.expectedPages,
    closed: s.closed,
    ...(faults !== undefined ? { faults } : {}),
    ...(s.mismatch !== undefined ? { mismatch: s.mismatch.slice(0, 1000) } : {}),
  };
}
