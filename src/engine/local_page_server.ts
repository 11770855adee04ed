/**
 * A verified lazy restore from the destination's own images: a loopback page server that speaks
 * CRIU's page-server protocol to the destination's `criu lazy-pages --page-server` daemon and
 * serves the lazy runs of a composed layout (lazy_images.ts: the store's slot files, read in
 * place). Every page is read from its slot, hashed and compared with the source's manifest
 * (the same check and allowance as the post-copy relay, lazy_check.ts's `checkPages`) before it
 * is sent: a page that differs, or one the manifest or the images do not hold, is never sent —
 * the server cuts the session and calls `onMismatch` (the restored copy must not run on memory
 * that is not the workload's).
 *
 * So CRIU's restore reads no bulk memory inside the freeze, and the restored tree's memory is
 * still checked page by page as it is placed. The figures come back as a
 * {@linkcode LazyCheck} (what the destination's drain report, `lazyCheckReport`, reads).
 *
 * The protocol (criu/page-xfer.c): the daemon sends `PS_IOV_GET` (pid, address, pages) for a
 * fault or a background fetch, answered in order with an iov (`PS_IOV_ADD_F` | PE_PRESENT) and
 * the pages; `PS_IOV_CLOSE` once every page is in place, answered with a 4-byte status 0.
 *
 * @example
 * ```ts
 * const server = startLocalPageServer({ composed, manifest, expectedPages, criuVersion });
 * criuLazyPages({ dir, address: "127.0.0.1", port: server.port });
 * const stats = await server.done; // { checkedPages, closed, … }
 * ```
 *
 * @module
 */
import { decodePagemap, PAGE_SIZE, PE_LAZY, PE_PARENT, PE_PRESENT } from "../criu/images/mod.ts";
import {
  pageServerIovBytes,
  PS_IOV_ADD_F,
  PS_IOV_CLOSE,
  PS_IOV_FORCE_CLOSE,
  PS_IOV_GET,
} from "../criu/page_server.ts";
import { type CriuDaemon, criuLazyPages } from "../criu/run.ts";
import {
  checkPages,
  ExactReader,
  type LazyCheck,
  type LazyCheckStats,
  registerLazyCheck,
  writeAll,
} from "./lazy_check.ts";
import type { ComposeResult } from "./lazy_images.ts";
import type { PageManifest } from "./manifest.ts";
import { type NativePageServer, startNativePageServer } from "./native_page_server.ts";
import type { Area } from "./page_allowance.ts";
import { lowerBound } from "../util/lower_bound.ts";

/** Pages one answer may carry (CRIU asks for at most 4 MiB: 1024 pages). */
const MAX_ANSWER_PAGES = 16_384;

/** Options of {@linkcode startLocalPageServer}. */
export interface LocalPageServerOptions {
  /** The composed layout the tree is restored from (its slot files hold the lazy runs). */
  composed: ComposeResult;
  /** The source's manifest: every page served must hash to its value. */
  manifest: PageManifest;
  /** Pages the daemon is to fetch ({@linkcode lazyPagesOf} the restore's images). */
  expectedPages: number;
  /** Areas whose bytes may differ (page_allowance.ts `allowedAreas`). @default none */
  allowance?: Map<number, Area[]>;
  /** The CRIU version of the daemon (the iov layout follows it). */
  criuVersion?: string;
  /**
   * Called once when a page is refused; the server's `done` waits for it (the caller ends the
   * restored copy there).
   */
  onMismatch?: (why: string) => void | Promise<void>;
}

/** A running local page server: a {@linkcode LazyCheck} whose serving can be held. */
export interface LocalPageServer extends LazyCheck {
  /** Which server this is (native_page_server.ts, or the TypeScript one here). */
  readonly kind: LocalPageServerKind;
  /**
   * Answer no further request until {@linkcode LocalPageServer.release}: once the restore
   * returned, the tree is stopped and only the daemon's background fetches come, which would
   * compete with the rest of the freeze (the read-back, the answer, the resume) for this
   * process's time.
   */
  hold(): void;
  /** Serve again (the tree resumes and faults). */
  release(): void;
}

/** Which server serves a local lazy restore: `U2CM_LOCAL_PAGE_SERVER` (`native` or `ts`). */
export type LocalPageServerKind = "native" | "ts";

/**
 * Start the server on a free loopback port; it serves the daemon's one session. The slot files
 * are opened now (the restore's directory may be removed once the restore returned). It runs in
 * native code (native_page_server.ts) unless `U2CM_LOCAL_PAGE_SERVER=ts` (or `kind`) asks for
 * the TypeScript server, or the shim cannot be loaded.
 */
export function startLocalPageServer(
  options: LocalPageServerOptions,
  kind: LocalPageServerKind = Deno.env.get("U2CM_LOCAL_PAGE_SERVER") === "ts" ? "ts" : "native",
): LocalPageServer {
  if (kind === "native") {
    let server: NativePageServer | undefined;
    try {
      server = startNativePageServer({
        ...options,
        iovBytes: pageServerIovBytes(options.criuVersion),
      });
    } catch { /* no shim (or one without the page server): the TypeScript server serves */ }
    if (server) return { ...server, kind: "native" };
  }
  return startTsLocalPageServer(options);
}

/** The TypeScript server (`U2CM_LOCAL_PAGE_SERVER=ts`, and where the shim cannot be loaded). */
function startTsLocalPageServer(options: LocalPageServerOptions): LocalPageServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const iovBytes = pageServerIovBytes(options.criuVersion);
  const stats: LazyCheckStats = {
    requests: 0,
    checkedPages: 0,
    expectedPages: options.expectedPages,
    closed: false,
  };
  const files = new Map<number, { file: Deno.FsFile; addresses: number[]; count: number }>();
  for (const [pid, proc] of options.composed.processes) {
    if (proc.fileCount === 0) continue;
    files.set(pid, {
      file: Deno.openSync(proc.pagesFile, { read: true }),
      addresses: proc.addresses,
      count: proc.fileCount,
    });
  }
  let conn: Deno.Conn | undefined;
  let refusing: Promise<void> | undefined;
  let refused: string | undefined;
  const closeAll = () => {
    for (const c of [listener, conn]) {
      try {
        c?.close();
      } catch { /* closed */ }
    }
  };
  // The refusal is reported (stats().mismatch) only once `onMismatch` is done: whoever reads it
  // may count on the restored copy being ended.
  const refuse = (why: string) => {
    if (refused) return;
    refused = why;
    closeAll();
    refusing = Promise.resolve(options.onMismatch?.(why)).catch(() => {})
      .then(() => void (stats.mismatch = why));
  };
  let held: PromiseWithResolvers<void> | undefined;
  const done = (async () => {
    try {
      try {
        conn = await listener.accept();
      } catch {
        return stats; // closed before the daemon came
      } finally {
        try {
          listener.close();
        } catch { /* closed */ }
      }
      (conn as Deno.TcpConn).setNoDelay(true);
      const reader = new ExactReader(conn);
      for (;;) {
        const iov = await reader.read(iovBytes);
        if (!iov) {
          // Without its CLOSE the daemon did not place every page: the copy cannot run on.
          if (!refused) refuse("the lazy-pages daemon left before every page was placed");
          break;
        }
        const view = new DataView(iov.buffer, iov.byteOffset);
        const cmd = view.getUint32(0, true) & 0xffff;
        if (cmd === PS_IOV_CLOSE || cmd === PS_IOV_FORCE_CLOSE) {
          await writeAll(conn, new Uint8Array(4)); // status 0: every page was served
          stats.closed = true;
          await reader.read(1); // the daemon closes once it has the status
          break;
        }
        if (cmd !== PS_IOV_GET) {
          refuse(`unexpected page-server command ${cmd}`);
          break;
        }
        stats.requests++;
        const nr = iovBytes === 24 ? view.getUint32(4, true) : Number(view.getBigUint64(8, true));
        const vaddr = Number(view.getBigUint64(iovBytes === 24 ? 8 : 16, true));
        const pid = Number(view.getBigUint64(iovBytes === 24 ? 16 : 24, true));
        if (nr < 1 || nr > MAX_ANSWER_PAGES) {
          refuse(`a request of ${nr} pages`);
          break;
        }
        if (held) await held.promise;
        if (refused) break;
        const answer = new Uint8Array(iovBytes + nr * PAGE_SIZE);
        const data = answer.subarray(iovBytes);
        const missing = readSlots(files.get(pid), pid, vaddr, nr, data);
        const why = missing ??
          checkPages(
            options.manifest,
            options.allowance?.get(pid) ?? [],
            pid,
            vaddr,
            data,
          );
        if (why) {
          refuse(why);
          break;
        }
        stats.checkedPages += nr;
        answer.set(iov);
        new DataView(answer.buffer).setUint32(0, (PE_PRESENT << 16) | PS_IOV_ADD_F, true);
        await writeAll(conn, answer);
      }
    } catch (e) {
      if (!stats.closed) refuse(`page session: ${(e as Error).message}`);
    } finally {
      closeAll();
      for (const f of files.values()) f.file.close();
    }
    await refusing;
    return stats;
  })();
  const release = () => {
    held?.resolve();
    held = undefined;
  };
  return {
    kind: "ts",
    port,
    stats: () => ({ ...stats }),
    done,
    close: () => {
      closeAll();
      release();
    },
    hold: () => void (held ??= Promise.withResolvers()),
    release,
  };
}

/** Held servers of this process, by migration id (the destination releases them at resume). */
const heldServers = new Map<string, LocalPageServer>();

/**
 * Hold migration `id`'s local page server until {@linkcode releaseLocalFill} (the restore
 * returned; the tree is stopped until its resume).
 *
 * @example
 * ```ts
 * holdLocalFill("m1", server); // … destination.ts at resume: releaseLocalFill("m1")
 * ```
 */
export function holdLocalFill(id: string, server: LocalPageServer): void {
  server.hold();
  heldServers.set(id, server);
  server.done.finally(() => {
    if (heldServers.get(id) === server) heldServers.delete(id);
  });
}

/** Let migration `id`'s held local page server serve again (no-op when none is held). */
export function releaseLocalFill(id: string): void {
  heldServers.get(id)?.release();
  heldServers.delete(id);
}

/**
 * Read pages `vaddr` … of process `pid` from its slot file into `out`: undefined when read, else
 * why they cannot be (not in the images as one run of consecutive slots).
 */
function readSlots(
  slots: { file: Deno.FsFile; addresses: number[]; count: number } | undefined,
  pid: number,
  vaddr: number,
  nr: number,
  out: Uint8Array,
): string | undefined {
  const where = `pid ${pid}: page 0x${vaddr.toString(16)}`;
  if (!slots) return `${where} is not in the images`;
  const { addresses, count } = slots;
  const lo = lowerBound(addresses, vaddr, 0, count);
  if (
    lo + nr > count || addresses[lo] !== vaddr ||
    addresses[lo + nr - 1] !== vaddr + (nr - 1) * PAGE_SIZE
  ) {
    return `${where} (${nr} pages) is not one run of the images`;
  }
  slots.file.seekSync(lo * PAGE_SIZE, Deno.SeekMode.Start);
  let off = 0;
  while (off < out.length) {
    const n = slots.file.readSync(out.subarray(off));
    if (n === null || n === 0) return `${where}: the slot file ends early`;
    off += n;
  }
  return undefined;
}

/**
 * Pages the restore's pagemaps in `dir` leave to the lazy-pages daemon (runs present and lazy,
 * not in a parent), over the processes of `composed`.
 *
 * @example
 * ```ts
 * const expected = await lazyPagesOf(dir, composed);
 * ```
 */
export async function lazyPagesOf(dir: string, composed: ComposeResult): Promise<number> {
  let n = 0;
  for (const pid of composed.processes.keys()) {
    const name = `pagemap-${pid}.img`;
    const pagemap = decodePagemap(await Deno.readFile(`${dir}/${name}`), name);
    for (const e of pagemap.entries) {
      const lazy = (e.flags & PE_LAZY) !== 0 && (e.flags & PE_PRESENT) !== 0;
      if (lazy && (e.flags & PE_PARENT) === 0) n += e.nrPages;
    }
  }
  return n;
}

/** Options of {@linkcode startVerifiedLocalLazy}. */
export interface VerifiedLocalLazyOptions extends LocalPageServerOptions {
  /** The migration (its check is registered under this id for the drain report). */
  migrationId: string;
  /** The restore's images directory (the daemon's `-D`). */
  dir: string;
}

/**
 * Start the server and, pointed at it, `criu lazy-pages --page-server` on the images in `dir`
 * (tied to this process: without the server the daemon has nothing to serve); the check is
 * registered for the drain report (lazy_check.ts `lazyCheckReport`). The caller waits for the
 * daemon's socket before `criu restore --lazy-pages`.
 *
 * @example
 * ```ts
 * const { check, daemon } = startVerifiedLocalLazy({ migrationId, dir, composed, manifest, expectedPages });
 * ```
 */
export function startVerifiedLocalLazy(
  options: VerifiedLocalLazyOptions,
): { check: LocalPageServer; daemon: CriuDaemon } {
  const check = startLocalPageServer(options);
  const daemon = criuLazyPages({
    dir: options.dir,
    address: "127.0.0.1",
    port: check.port,
    timeoutMs: 600_000,
    dieWithParent: true,
    // Warnings only: logging every request and fault (-v4) slows the daemon so much that the
    // running tree faults far more often, and every fault shrinks the background fetch back to
    // 64 KiB (criu/uffd.c update_xfer_len): 10× the requests, 3× the fill time of 512 MiB here.
    extraArgs: ["-v2"],
  });
  daemon.status.finally(() => check.close());
  registerLazyCheck(options.migrationId, check, daemon.status, `${options.dir}/lazy-pages.log`);
  return { check, daemon };
}
