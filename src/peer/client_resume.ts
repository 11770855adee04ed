/**
 * Resuming after a dropped link: open and authenticate a new one, re-prepare every active
 * migration on it (the agent answers with the last chunk it stored), resend what it lacks, and
 * switch the client over without yielding in between, so no chunk is sent on neither link.
 * Retries with backoff until the resume timeout; then every migration fails with PeerError
 * "closed". A pin or authentication failure ends the attempts at once.
 *
 * @example
 * ```ts
 * await resumeChannels({ channels, open, prepare, forget, switchTo, closing, timeoutMs, peerName, log });
 * ```
 *
 * @module
 */
import type { MigrationChannelImpl } from "./channel.ts";
import { PeerError } from "./errors.ts";
import type { Link } from "./link.ts";
import type { LogSink } from "./log.ts";
import type { Control } from "./protocol.ts";

/** Options of {@linkcode resumeChannels}. */
export interface ResumeOptions {
  /** The migrations that were active when the link dropped. */
  channels: MigrationChannelImpl[];
  /** Open and authenticate a new link. */
  open(): Promise<Link>;
  /** Prepare `ch` again on `link` (resume); the agent's ack or abort. */
  prepare(link: Link, ch: MigrationChannelImpl): Promise<Control>;
  /** Drop `ch` from the client's table. */
  forget(ch: MigrationChannelImpl): void;
  /** Make `link` the client's current link. */
  switchTo(link: Link): void;
  /** Send one kept chunk on `link`; false when it did not go. @default link.sendWire */
  sendWire?(link: Link, wire: Uint8Array): Promise<boolean>;
  /** Whether the client is closing (stop trying). */
  closing(): boolean;
  /** How long to keep trying. */
  timeoutMs: number;
  /** For messages. */
  peerName: string;
  /** The client's log. */
  log: LogSink;
}

/** See the module doc. */
export async function resumeChannels(o: ResumeOptions): Promise<void> {
  const { channels } = o;
  const deadline = Date.now() + o.timeoutMs;
  let lastError = "";
  for (let attempt = 1; Date.now() < deadline && !o.closing(); attempt++) {
    let link: Link | undefined;
    try {
      link = await o.open();
      let dropped = false;
      link.closed.then(() => dropped = true);
      for (const ch of channels) {
        if (!ch.active) continue;
        const reply = await o.prepare(link, ch);
        if (reply.type === "abort") {
          ch.fail(new PeerError("aborted", `peer could not resume '${ch.id}': ${reply.reason}`));
          o.forget(ch);
        } else if (reply.type === "ack") {
          ch.resumeFrom(reply.seq);
        }
      }
      // Resend until nothing is left unsent, then switch over without yielding in between.
      const l = link;
      const send = (m: Uint8Array) =>
        o.sendWire
          ? o.sendWire(l, m)
          : l.sendWire
          ? l.sendWire(m).then(() => true, () => false)
          : Promise.resolve(false);
      for (let pass = 0, sent = 1; sent > 0 && pass < 10_000; pass++) {
        sent = 0;
        for (const ch of channels) {
          const r = ch.resendUnsent(send);
          sent += typeof r === "number" ? r : await r;
        }
      }
      if (dropped) throw new PeerError("closed", "the new link dropped while resuming");
      o.switchTo(link);
      o.log({ level: "info", msg: "resumed", peer: o.peerName, attempt });
      return;
    } catch (e) {
      lastError = (e as Error).message;
      link?.close();
      if (e instanceof PeerError && (e.code === "auth" || e.code === "pin-mismatch")) break;
      await new Promise((r) => setTimeout(r, Math.min(250 * attempt, 2000)));
    }
  }
  const err = new PeerError(
    "closed",
    `lost the link to '${o.peerName}' and could not resume within ${o.timeoutMs} ms` +
      (lastError ? ` (${lastError})` : ""),
  );
  o.log({ level: "error", msg: "resume failed", peer: o.peerName, reason: err.message });
  for (const ch of channels) {
    ch.fail(err);
    o.forget(ch);
  }
}
