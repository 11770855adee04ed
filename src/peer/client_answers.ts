/**
 * The answers a client waits for by request id: hash listings (one or more `Hashes` frames, the
 * last flagged), `resolved` and `containerChecked` messages. Each wait has a timeout; a dropped link fails them all.
 *
 * @example
 * ```ts
 * const answers = new ClientAnswers();
 * const id = answers.nextId();
 * const listing = answers.hashes(id, 60_000); // then send the request carrying `id`
 * ```
 *
 * @module
 */
import { PeerError } from "./errors.ts";
import type { HashesFrame } from "./frames.ts";
import type { ControlOf } from "./protocol.ts";

/** See the module doc. */
export class ClientAnswers {
  #next = 1;
  #hashes = new Map<number, { frames: HashesFrame[]; done: (f: HashesFrame[] | Error) => void }>();
  #resolved = new Map<number, (m: ControlOf<"resolved"> | Error) => void>();
  #checked = new Map<number, (m: ControlOf<"containerChecked"> | Error) => void>();

  /** A fresh request id. */
  nextId(): number {
    return this.#next++;
  }

  /** The hash listing answering request `id`, within `timeoutMs`. */
  hashes(id: number, timeoutMs: number): Promise<HashesFrame[]> {
    return this.#wait(this.#hashes, id, timeoutMs, "no hash listing in time", (done) => ({
      frames: [],
      done,
    }));
  }

  /** The `resolved` answer to request `id`, within `timeoutMs`. */
  resolved(id: number, timeoutMs: number, what: string): Promise<ControlOf<"resolved">> {
    return this.#wait(this.#resolved, id, timeoutMs, `no answer about '${what}'`, (done) => done);
  }

  /** The `containerChecked` answer to request `id`, within `timeoutMs`. */
  containerChecked(id: number, timeoutMs: number): Promise<ControlOf<"containerChecked">> {
    const why = "no answer to the container check";
    return this.#wait(this.#checked, id, timeoutMs, why, (done) => done);
  }

  /** Fail the wait for request `id` (its request could not be sent). */
  fail(id: number, err: Error): void {
    this.#hashes.get(id)?.done(err);
    this.#resolved.get(id)?.(err);
    this.#checked.get(id)?.(err);
  }

  /** A hash-listing frame arrived. */
  onHashes(frame: HashesFrame): void {
    const w = this.#hashes.get(frame.seq);
    if (!w) return;
    w.frames.push(frame);
    if (frame.last) w.done(w.frames);
  }

  /** A `resolved` message arrived. */
  onResolved(msg: ControlOf<"resolved">): void {
    this.#resolved.get(msg.reqId)?.(msg);
  }

  /** A `containerChecked` message arrived. */
  onContainerChecked(msg: ControlOf<"containerChecked">): void {
    this.#checked.get(msg.reqId)?.(msg);
  }

  /** The link closed: every wait fails. */
  linkClosed(why: string): void {
    const err = () => new PeerError("closed", `link closed: ${why}`);
    for (const w of this.#hashes.values()) w.done(err());
    for (const w of this.#resolved.values()) w(err());
    for (const w of this.#checked.values()) w(err());
  }

  async #wait<T, E>(
    table: Map<number, E>,
    id: number,
    timeoutMs: number,
    timeoutMessage: string,
    entry: (done: (r: T | Error) => void) => E,
  ): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const result = new Promise<T | Error>((resolve) => {
      table.set(id, entry(resolve));
      timer = setTimeout(() => resolve(new PeerError("timeout", timeoutMessage)), timeoutMs);
    });
    try {
      const r = await result;
      if (r instanceof Error) throw r;
      return r;
    } finally {
      clearTimeout(timer);
      table.delete(id);
    }
  }
}
