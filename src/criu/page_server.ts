/**
 * Talking to the page server of a `criu dump --lazy-pages` without serving a lazy restore:
 * {@linkcode closeLazyDump} ends the dump's session so that it finishes and leaves the tree
 * stopped. The wire format of a command is `struct page_server_iov` (criu/page-xfer.c), whose
 * size changed in CRIU 4.2: `nr_pages` grew from u32 to u64, so the struct grew from 24 to 32
 * bytes (`u32 cmd; u32 pad; u64 nr_pages; u64 vaddr; u64 dst_id`). CRIU reads exactly one struct
 * with MSG_WAITALL, so a 24-byte command followed by a half-close reaches a 4.2 server as a
 * short read ("Can't read pagemap from socket"): it closes without answering.
 *
 * @module
 */

/** CRIU's page-server command that ends a session (criu/page-xfer.c). */
export const PS_IOV_CLOSE = 0x1023;
/** The command that ends a session at once, without an answer (criu/page-xfer.c). */
export const PS_IOV_FORCE_CLOSE = 0x1024;
/** A lazy-pages daemon's request for pages (criu/page-xfer.c). */
export const PS_IOV_GET = 7;
/** The answer's command: pages follow (criu/page-xfer.c; flags in the upper 16 bits). */
export const PS_IOV_ADD_F = 6;

/**
 * Bytes of `struct page_server_iov` for CRIU `version` ("4.1.1", "4.2.1"): 32 from 4.2 on, 24
 * before; an unknown version is taken as the newer layout.
 *
 * @example
 * ```ts
 * pageServerIovBytes("4.1.1"); // 24
 * pageServerIovBytes("4.2.1"); // 32
 * ```
 */
export function pageServerIovBytes(version: string | undefined): 24 | 32 {
  const m = /^(\d+)\.(\d+)/.exec(version ?? "");
  if (!m) return 32;
  const [major, minor] = [Number(m[1]), Number(m[2])];
  return major > 4 || (major === 4 && minor >= 2) ? 32 : 24;
}

/**
 * A page-server command with no pages (`nr_pages`, `vaddr`, `dst_id` zero) in the layout of
 * CRIU `version`.
 *
 * @example
 * ```ts
 * encodePageServerIov(PS_IOV_CLOSE, "4.2.1").length; // 32
 * ```
 */
export function encodePageServerIov(cmd: number, version: string | undefined): Uint8Array {
  const iov = new Uint8Array(pageServerIovBytes(version));
  new DataView(iov.buffer).setUint32(0, cmd, true);
  return iov;
}

/** The CRIU version a log names on its first lines (`Version: 4.2.1 (gitid …)`). */
export function criuVersionInLog(text: string): string | undefined {
  return /Version:\s*(\d+\.\d+(?:\.\d+)?)/.exec(text)?.[1];
}

/** Options of {@linkcode closeLazyDump}. */
export interface CloseLazyDumpOptions {
  /** The CRIU version the dump runs (its log's first lines name it). @default the newer layout */
  criuVersion?: string;
}

/**
 * End a `criu dump --lazy-pages` without serving any page: connect to its page server, send
 * PS_IOV_CLOSE and wait for its status word. The dump then drops its page pipes and finishes,
 * leaving the tree as its `leave` option says (stopped, for u2cm). Resolves with the dump's
 * answer (0: closed cleanly).
 *
 * @example
 * ```ts
 * const dump = await criuLazyDump({ pid, dir, lazyPages: true, listen });
 * // … read the frozen tree's memory yourself …
 * await closeLazyDump(listen, { criuVersion: dump.criuVersion }); // the tree stays stopped
 * ```
 */
export async function closeLazyDump(
  listen: { address: string; port: number },
  options: CloseLazyDumpOptions = {},
): Promise<number> {
  const conn = await Deno.connect({ hostname: listen.address, port: listen.port });
  try {
    const iov = encodePageServerIov(PS_IOV_CLOSE, options.criuVersion);
    let off = 0;
    while (off < iov.length) off += await conn.write(iov.subarray(off));
    // The dump corks its socket (TCP_CORK holds the answer up to 200 ms) and, once it has
    // answered, waits for our end to close: half-close now, so its answer comes with its close.
    await conn.closeWrite();
    const status = new Uint8Array(4);
    let got = 0;
    while (got < 4) {
      const n = await conn.read(status.subarray(got));
      if (n === null) {
        throw new Error(
          `the lazy dump closed its page server without answering (sent a ${iov.length}-byte ` +
            `command for CRIU ${options.criuVersion ?? "≥ 4.2"}; see its dump.log)`,
        );
      }
      got += n;
    }
    return new DataView(status.buffer).getInt32(0, true);
  } finally {
    conn.close();
  }
}
