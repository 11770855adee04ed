/**
 * How the client puts a message on a link: control text and plain binary messages as they are,
 * chunks laid out for the wire as records of a sealed bulk stream or as wire bytes. Each answers
 * false instead of throwing when the link is gone (the channel keeps the chunk for a resend).
 *
 * @example
 * ```ts
 * if (!await sendOn(link, encodeControl({ type: "abort", migrationId: "m1", reason: "done" }))) {
 *   // the link dropped; the message did not go out
 * }
 * ```
 *
 * @module
 */
import type { Link } from "./link.ts";
import { SealedLink } from "./bulk_client.ts";

/** Send `m` on `link`; false when the link failed. */
export function sendOn(link: Link, m: string | Uint8Array): Promise<boolean> {
  return link.send(m).then(() => true, () => false);
}

/**
 * Send a chunk laid out by the client's layout: sealed-stream chunks go as records on a link's
 * bulk stream, or as plain binary messages on a link without one; the others as wire bytes.
 */
export function sendWireOn(link: Link, wire: Uint8Array, sealed: boolean): Promise<boolean> {
  const sent = sealed
    ? link instanceof SealedLink ? link.sendRecord(wire) : link.send(wire)
    : link.sendWire
    ? link.sendWire(wire)
    : undefined;
  return sent ? sent.then(() => true, () => false) : Promise.resolve(false);
}
