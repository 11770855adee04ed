/**
 * Errors of the peer layer. Every failure a caller can act on carries a stable `code`.
 *
 * @module
 */

/** Why a peer operation failed. */
export type PeerErrorCode =
  | "identity" // the node has no identity yet, or its files are unreadable
  | "unknown-peer" // a name or key that is not in peers.json
  | "unreachable" // connecting failed or timed out
  | "pin-mismatch" // the peer's TLS certificate or key is not the pinned one
  | "auth" // challenge/response failed
  | "protocol" // a message did not decode or broke the protocol's order
  | "timeout" // no answer in time
  | "closed" // the connection closed and could not be resumed
  | "aborted" // the migration was aborted by either side
  | "rejected" // a request was malformed (bad id, bad name, bad size) or not possible
  | "refused"; // the peer refused a migration (its limits: migrations at once, room)

/** A failure talking to a peer, with a stable {@linkcode PeerErrorCode}. */
export class PeerError extends Error {
  /**
   * @param code the failure class
   * @param message what went wrong and what to do about it
   */
  constructor(readonly code: PeerErrorCode, message: string) {
    super(message);
    this.name = "PeerError";
  }
}

/** A message or frame that failed to decode or validate. Never thrown past a session boundary. */
export class ProtocolError extends Error {
  /** @param message what was wrong with the input */
  constructor(message: string) {
    super(message);
    this.name = "ProtocolError";
  }
}
