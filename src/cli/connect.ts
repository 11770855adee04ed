/**
 * Connecting to a pinned peer from the commands that act on migrations (`migrate`, `recover`).
 *
 * @module
 */
import { connectPeer, type ConnectPeerOptions, type PeerClient, PeerError } from "../peer/mod.ts";

/** Errors a second attempt cannot fix. */
const FINAL_CODES = ["identity", "unknown-peer", "pin-mismatch"];

/**
 * Connect, trying three times a second or two apart: a peer that just restarted, or a handshake
 * that timed out on a loaded machine, is not yet an unreachable peer.
 *
 * @example
 * ```ts
 * const client = await connectWithRetry({ stateDir: "/var/lib/u2cm", peer: "edge-b" });
 * ```
 */
export async function connectWithRetry(options: ConnectPeerOptions): Promise<PeerClient> {
  for (let attempt = 1;; attempt++) {
    try {
      return await connectPeer(options);
    } catch (e) {
      if (attempt >= 3 || (e instanceof PeerError && FINAL_CODES.includes(e.code))) throw e;
      await new Promise((r) => setTimeout(r, 1000 * attempt));
    }
  }
}
