/**
 * The post-copy relay's session (lazy_check.ts): between the destination's `criu lazy-pages`
 * daemon and the source's page server, each daemon command is answered in its order (the
 * daemon's page-server reads are a FIFO), from the read-ahead (lazy_read_ahead.ts) when it holds
 * the pages, else by the source; the source answers in the order it was asked (CRIU's page
 * server serves one command after the other), so the relay keeps several requests on their way
 * at once. Every answer of the source is checked (`check`) before its pages are used.
 *
 * @example
 * ```ts
 * const s = new RelaySession({ daemon, source, iovBytes: 24, stats, cut });
 * s.pump(true); // start the read-ahead
 * await Promise.race([relayCommands(s, onClose), relayAnswers(s, check, refuse)]);
 * ```
 *
 * @module
 */
import { PS_IOV_ADD_F, PS_IOV_CLOSE, PS_IOV_FORCE_CLOSE, PS_IOV_GET } from "../criu/page_server.ts";
import { PE_PRESENT } from "../criu/images/mod.ts";
import type { LazyRun, ReadAhead } from "./lazy_read_ahead.ts";

const PAGE = 4096;
/** Pages one answer may carry (a bound on what the relay buffers per answer: 64 MiB). */
const MAX_ANSWER_PAGES = 16_384;

/** The figures a session keeps (the relay's stats). */
export interface RelayCounts {
  /** GET requests the daemon sent. */
  requests: number;
  /** Pages delivered to the daemon that matched the manifest. */
  checkedPages: number;
  /** Whether the daemon's CLOSE was answered. */
  closed: boolean;
}

/** Options of a {@linkcode RelaySession}. */
export interface RelaySessionOptions {
  /** The daemon's connection. */
  daemon: Deno.Conn;
  /** The connection to the source's page server. */
  source: Deno.Conn;
  /** Bytes of a page-server command in the daemon's CRIU (24 before 4.2, 32 from 4.2). */
  iovBytes: number;
  /** Where the figures go. */
  stats: RelayCounts;
  /** The read-ahead, when the relay knows the lazy runs. */
  readAhead?: ReadAhead;
  /** Cut both connections (on a failed write). */
  cut: () => void;
}

/** What the relay asked the source for, in the order the source answers. */
type Asked =
  | { kind: "daemon"; answer: PromiseWithResolvers<Uint8Array[] | undefined> }
  | { kind: "close"; answer: PromiseWithResolvers<Uint8Array[] | undefined> }
  | { kind: "read-ahead"; asked: LazyRun }
  | { kind: "echo" };

/**
 * Milliseconds without a request to the source after which a daemon request answered from the
 * read-ahead also asks the source again for one of those (already checked) pages, the answer
 * dropped: the source sees the session move while the daemon is fed from here (its drain gives
 * up after a stretch without page traffic: final_post_copy.ts).
 */
const ECHO_AFTER_MS = 50;

/**
 * One daemon session: the daemon's commands are answered in their order (its page-server reads
 * are a FIFO), from the read-ahead when it holds the pages, else by the source; the source's
 * answers come in the order the relay asked (CRIU's page server serves one command after the
 * other), so several requests may be on their way at once.
 */
export class RelaySession {
  #asked: Asked[] = [];
  #upWrites = Promise.resolve();
  #toDaemon = Promise.resolve();
  closing = false;
  #reading = false;
  #askedAt = performance.now();

  readonly daemon: Deno.Conn;
  readonly source: Deno.Conn;
  readonly iovBytes: number;
  readonly stats: RelayCounts;
  readonly readAhead: ReadAhead | undefined;
  readonly cut: () => void;

  /** @param o see {@linkcode RelaySessionOptions} */
  constructor(o: RelaySessionOptions) {
    this.daemon = o.daemon;
    this.source = o.source;
    this.iovBytes = o.iovBytes;
    this.stats = o.stats;
    this.readAhead = o.readAhead;
    this.cut = o.cut;
  }

  /** Send a command to the source; its answer is the `asked` entry's. */
  ask(iov: Uint8Array, asked: Asked): void {
    this.#asked.push(asked);
    this.#askedAt = performance.now();
    this.#upWrites = this.#upWrites.then(() => writeAll(this.source, iov)).catch(this.cut);
  }

  /** The next answer the source owes (undefined: it answered what nobody asked). */
  owed(): Asked | undefined {
    return this.#asked.shift();
  }

  /** Queue an answer for the daemon behind the ones before it (undefined: nothing to write). */
  reply(parts: Promise<Uint8Array[] | undefined>, then?: () => void): void {
    this.#toDaemon = this.#toDaemon.then(async () => {
      const bytes = await parts;
      if (!bytes) return;
      for (const b of bytes) await writeAll(this.daemon, b);
      then?.();
    }).catch(this.cut);
  }

  /** Pass a command on to the source; the daemon gets its answer in turn. */
  forward(iov: Uint8Array): Promise<Uint8Array[] | undefined> {
    const answer = Promise.withResolvers<Uint8Array[] | undefined>();
    this.ask(iov, { kind: "daemon", answer });
    return answer.promise;
  }

  /** Ask the source for what the read-ahead wants next (once started, while the session runs). */
  pump(start = false): void {
    if (start) this.#reading = true;
    if (!this.readAhead || !this.#reading || this.closing) return;
    for (let r = this.readAhead.next(); r; r = this.readAhead.next()) {
      this.ask(encodeIov(this.iovBytes, PS_IOV_GET, r.nrPages, r.vaddr, r.pid), {
        kind: "read-ahead",
        asked: r,
      });
    }
  }

  /** The daemon got page `vaddr` of `pid` from here: show the source the session moves. */
  echo(pid: number, vaddr: number): void {
    if (this.closing || this.#asked.length > 0) return;
    if (performance.now() - this.#askedAt < ECHO_AFTER_MS) return;
    this.ask(encodeIov(this.iovBytes, PS_IOV_GET, 1, vaddr, pid), { kind: "echo" });
  }

  /** Settles once every answer so far was written to the daemon (or the session was cut). */
  written(): Promise<void> {
    return this.#toDaemon;
  }

  /** Settles once every command so far was written to the source. */
  sent(): Promise<void> {
    return this.#upWrites;
  }
}

/** Daemon → relay: each command answered in turn, from the read-ahead or by the source. */
export async function relayCommands(s: RelaySession, onClose: () => void): Promise<void> {
  const reader = new ExactReader(s.daemon);
  for (;;) {
    const iov = await reader.read(s.iovBytes);
    if (!iov) break;
    const cmd = new DataView(iov.buffer, iov.byteOffset).getUint32(0, true) & 0xffff;
    if (cmd === PS_IOV_CLOSE || cmd === PS_IOV_FORCE_CLOSE) {
      // Every answer before it has reached the daemon; the source answers what the read-ahead
      // asked first, then the CLOSE with its status.
      onClose();
      const answer = Promise.withResolvers<Uint8Array[] | undefined>();
      s.ask(iov, { kind: "close", answer });
      s.reply(answer.promise, () => s.stats.closed = true);
      continue;
    }
    if (cmd === PS_IOV_GET) {
      s.stats.requests++;
      const { nr, vaddr, pid } = decodeIov(iov, s.iovBytes);
      const ra = s.readAhead;
      if (ra?.covers(pid, vaddr, nr)) {
        s.reply(
          ra.take(pid, vaddr, nr, s.iovBytes).then((answer) => {
            if (!answer) return s.forward(iov); // one of them will not come: ask the source
            s.stats.checkedPages += nr;
            s.pump();
            s.echo(pid, vaddr);
            // The header and the pages in one write.
            const head = encodeIov(s.iovBytes, PS_IOV_ADD_F | (PE_PRESENT << 16), nr, vaddr, pid);
            answer.set(head);
            return [answer];
          }),
        );
        continue;
      }
    }
    s.reply(s.forward(iov));
  }
  await s.sent();
  try {
    await s.source.closeWrite();
  } catch { /* closed */ }
}

/** Source → relay: each answer's pages checked against the manifest before they are used. */
export async function relayAnswers(
  s: RelaySession,
  check: (pid: number, vaddr: number, data: Uint8Array) => string | undefined,
  refuse: (why: string) => void,
): Promise<void> {
  const reader = new ExactReader(s.source);
  const iovBytes = s.iovBytes;
  for (;;) {
    // The first 4 bytes: an answer's cmd, or the status word that answers a CLOSE.
    const head = await reader.read(4);
    if (!head) return;
    const owed = s.owed();
    if (!owed) return refuse("the source answered a request nobody sent");
    if (owed.kind === "close") {
      // The session is over: the relay closes both ends (the server waits for our close).
      owed.answer.resolve([head]);
      await s.written();
      return;
    }
    const rest = await reader.read(iovBytes - 4);
    if (!rest) return;
    const iov = new Uint8Array(iovBytes);
    iov.set(head);
    iov.set(rest, 4);
    const { nr, vaddr, pid } = decodeIov(iov, iovBytes);
    if (nr > MAX_ANSWER_PAGES) return refuse(`an answer of ${nr} pages`);
    const data = await reader.read(nr * PAGE);
    if (!data) return;
    // An echo's page is dropped (the daemon has it, checked when it arrived): not checked again,
    // so a page the source's pipe changed since cannot stop a copy that never got it twice.
    if (owed.kind === "echo") continue;
    const why = check(pid, vaddr, data);
    if (why) return refuse(why);
    if (owed.kind === "read-ahead") {
      s.readAhead!.arrived(owed.asked, pid, vaddr, nr, data);
      s.pump();
      continue;
    }
    s.stats.checkedPages += s.readAhead ? s.readAhead.deliveredElsewhere(pid, vaddr, nr) : nr;
    owed.answer.resolve([iov, data]);
  }
}

/** A page-server command or answer header in the `iovBytes` layout. */
function encodeIov(
  iovBytes: number,
  cmd: number,
  nr: number,
  vaddr: number,
  pid: number,
): Uint8Array {
  const iov = new Uint8Array(iovBytes);
  const v = new DataView(iov.buffer);
  v.setUint32(0, cmd, true);
  if (iovBytes === 24) v.setUint32(4, nr, true);
  else v.setBigUint64(8, BigInt(nr), true);
  v.setBigUint64(iovBytes === 24 ? 8 : 16, BigInt(vaddr), true);
  v.setBigUint64(iovBytes === 24 ? 16 : 24, BigInt(pid), true);
  return iov;
}

function decodeIov(iov: Uint8Array, iovBytes: number): { nr: number; vaddr: number; pid: number } {
  const view = new DataView(iov.buffer, iov.byteOffset, iov.byteLength);
  return {
    nr: iovBytes === 24 ? view.getUint32(4, true) : Number(view.getBigUint64(8, true)),
    vaddr: Number(view.getBigUint64(iovBytes === 24 ? 8 : 16, true)),
    pid: Number(view.getBigUint64(iovBytes === 24 ? 16 : 24, true)),
  };
}

/**
 * Reads exactly n bytes at a time from a connection (undefined at a clean end).
 *
 * @example
 * ```ts
 * const iov = await new ExactReader(conn).read(24);
 * ```
 */
export class ExactReader {
  #buf = new Uint8Array(1 << 16);
  #start = 0;
  #end = 0;
  constructor(private readonly conn: Deno.Conn) {}

  async read(n: number): Promise<Uint8Array | undefined> {
    const out = new Uint8Array(n);
    let got = 0;
    while (got < n) {
      if (this.#start === this.#end && n - got >= this.#buf.length) {
        // A large answer: read straight into it, not 64 KiB at a time through the buffer.
        let r: number | null;
        try {
          r = await this.conn.read(out.subarray(got));
        } catch {
          r = null;
        }
        if (r === null || r === 0) return undefined;
        got += r;
        continue;
      }
      if (this.#start === this.#end) {
        let r: number | null;
        try {
          r = await this.conn.read(this.#buf);
        } catch {
          r = null;
        }
        if (r === null || r === 0) return undefined;
        this.#start = 0;
        this.#end = r;
      }
      const take = Math.min(n - got, this.#end - this.#start);
      out.set(this.#buf.subarray(this.#start, this.#start + take), got);
      this.#start += take;
      got += take;
    }
    return out;
  }
}

/** Write all of `bytes` to `conn`. @example `await writeAll(conn, iov);` */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}
