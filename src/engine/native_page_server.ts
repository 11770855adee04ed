/**
 * The local page server in native code (src/native/page_serve.c): the same session as the
 * TypeScript server of local_page_server.ts — CRIU's page-server protocol to the destination's
 * `criu lazy-pages --page-server` daemon, the lazy runs served from the composed layout's slot
 * files, every page hashed and compared with the source's manifest (the allowance's areas
 * zeroed, as the source hashed them) before it is sent — on a thread of its own, so that no
 * request waits for this process's event loop (the TypeScript server's own work was 60–90 µs a
 * request, of a fill of ~0.1 ms a page).
 *
 * A refused page is never sent: the session stops answering and keeps the daemon's connection
 * open while `onMismatch` ends the restored copy (its faults wait meanwhile), then cuts it; the
 * refusal is reported (`stats().mismatch`) only once `onMismatch` is done, as by the TypeScript
 * server.
 *
 * @example
 * ```ts
 * const server = startNativePageServer({ composed, manifest, expectedPages, iovBytes: 24 });
 * criuLazyPages({ dir, address: "127.0.0.1", port: server.port });
 * const stats = await server.done; // { checkedPages, closed, … }
 * ```
 *
 * @module
 */
import { pageServe, PS_REFUSED } from "../native/page_serve.ts";
import type { LazyCheck, LazyCheckStats } from "./lazy_check.ts";
import type { ComposeResult } from "./lazy_images.ts";
import type { PageManifest } from "./manifest.ts";
import type { Area } from "./page_allowance.ts";

/** Options of {@linkcode startNativePageServer}. */
export interface NativePageServerOptions {
  /** The composed layout the tree is restored from (its slot files hold the lazy runs). */
  composed: ComposeResult;
  /** The source's manifest: every page served must hash to its value. */
  manifest: PageManifest;
  /** Pages the daemon is to fetch (for the figures). */
  expectedPages: number;
  /** Areas whose bytes may differ (page_allowance.ts `allowedAreas`). @default none */
  allowance?: Map<number, Area[]>;
  /** Bytes of the daemon's `struct page_server_iov` (criu/page_server.ts pageServerIovBytes). */
  iovBytes: 24 | 32;
  /** Called once when a page is refused; `done` waits for it. */
  onMismatch?: (why: string) => void | Promise<void>;
}

/** A running native page server: a {@linkcode LazyCheck} whose answers can be held. */
export interface NativePageServer extends LazyCheck {
  /** Answer no further request until {@linkcode NativePageServer.release}. */
  hold(): void;
  /** Answer again. */
  release(): void;
}

/**
 * Start the native server on a free loopback port (throws when the shim cannot be loaded: the
 * caller falls back to the TypeScript server). The slot files are opened now.
 */
export function startNativePageServer(options: NativePageServerOptions): NativePageServer {
  const ps = pageServe();
  const h = ps.u2cm_ps_open(options.iovBytes);
  if (h === null) throw new Error("the native page server cannot listen on a loopback port");
  let live = true;
  // The server gets the manifest there is now, and again at each release when it was replaced
  // meanwhile (restore.ts may decode it only while the server is held).
  let sent: PageManifest["processes"] | undefined;
  const pushManifest = () => {
    if (options.manifest.processes === sent) return;
    sent = options.manifest.processes;
    for (const [pid, proc] of options.composed.processes) {
      if (proc.fileCount === 0) continue;
      const list = sent.get(pid);
      const addrs = new Float64Array(list?.addresses ?? []);
      const hashes = list?.hashes ?? new Uint8Array(0);
      const err = ps.u2cm_ps_set_manifest(
        h,
        BigInt(pid),
        list ? 1 : 0,
        addrs,
        hashes,
        addrs.length,
      );
      if (err < 0) throw new Error(`the native page server lost pid ${pid}: errno ${-err}`);
    }
  };
  try {
    for (const [pid, proc] of options.composed.processes) {
      if (proc.fileCount === 0) continue;
      // (Inside the freeze: the constructors copy 262,144 addresses, 1 GiB, in ~1 ms.)
      const slots = new Float64Array(proc.addresses).subarray(0, proc.fileCount);
      const areas = Float64Array.from((options.allowance?.get(pid) ?? []).flat());
      const err = ps.u2cm_ps_add_proc(
        h,
        BigInt(pid),
        new TextEncoder().encode(proc.pagesFile + "\0"),
        slots,
        slots.length,
        areas,
        areas.length / 2,
      );
      if (err < 0) throw new Error(`cannot open ${proc.pagesFile}: errno ${-err}`);
    }
    pushManifest();
  } catch (e) {
    ps.u2cm_ps_free(h);
    throw e;
  }
  const port = ps.u2cm_ps_port(h);
  const figures = new BigUint64Array(4);
  let final: LazyCheckStats | undefined;
  const read = (): LazyCheckStats => {
    if (final) return { ...final };
    ps.u2cm_ps_stats(h, figures);
    return {
      requests: Number(figures[0]),
      checkedPages: Number(figures[1]),
      expectedPages: options.expectedPages,
      closed: figures[2] === 1n,
    };
  };
  const done = (async () => {
    let why: string | undefined;
    try {
      if (await ps.u2cm_ps_serve(h) === PS_REFUSED) {
        const text = new Uint8Array(512);
        const n = ps.u2cm_ps_why(h, text, text.length);
        why = new TextDecoder().decode(text.subarray(0, n));
        // The daemon still waits for its answer: the restored copy ends before it sees the cut.
        await Promise.resolve(options.onMismatch?.(why)).catch(() => {});
      }
    } finally {
      const stats = read();
      live = false;
      ps.u2cm_ps_free(h);
      final = { ...stats, ...(why !== undefined ? { mismatch: why } : {}) };
    }
    return { ...final };
  })();
  return {
    port,
    stats: read,
    done,
    close: () => void (live && ps.u2cm_ps_stop(h)),
    hold: () => void (live && ps.u2cm_ps_hold(h, 1)),
    release: () => {
      if (!live) return;
      pushManifest();
      ps.u2cm_ps_hold(h, 0);
    },
  };
}
