/**
 * Mutual authentication on a fresh link, before any other message is accepted.
 *
 * 1. agent → `challenge` {its public key, its certificate fingerprint, nonce Ns}
 * 2. client checks the key is the pinned one and the fingerprint is the certificate it sees on this
 *    very TLS connection, then → `auth` {its public key, nonce Nc, signature over the transcript}
 * 3. agent checks the key is pinned in its peers.json, the signature, and that Nc is fresh, then →
 *    `welcome` {its signature over the transcript, capabilities}
 * 4. client checks the agent's signature.
 *
 * The transcript binds both keys, both nonces and the certificate fingerprint, with the signer's
 * role, so a signature cannot be replayed on another connection, in the other direction, or through
 * a relay presenting another certificate.
 *
 * @module
 */
import { PeerError, ProtocolError } from "./errors.ts";
import type { Identity } from "./identity.ts";
import { base64url, fromBase64url, sign, verify } from "./keys.ts";
import type { Link } from "./link.ts";
import {
  type Capabilities,
  type ControlOf,
  decodeControl,
  encodeControl,
  MAX_PREAUTH_BYTES,
} from "./protocol.ts";

/** Default time allowed for the whole handshake. */
export const AUTH_TIMEOUT_MS = 10_000;

/** Bytes signed by `role` for one handshake. */
export function transcript(
  role: "client" | "server",
  t: { certFingerprint: string; serverKey: string; clientKey: string; ns: string; nc: string },
): Uint8Array {
  return new TextEncoder().encode(
    JSON.stringify(["u2cm-auth-v1", role, t.certFingerprint, t.serverKey, t.clientKey, t.ns, t.nc]),
  );
}

/** A fresh 32-byte nonce, base64url. */
export function freshNonce(): string {
  return base64url(crypto.getRandomValues(new Uint8Array(32)));
}

/** Remembers recent nonces to refuse replays; bounded. */
export class NonceLog {
  #seen = new Set<string>();
  /** @param max most nonces remembered @default 100000 */
  constructor(readonly max = 100_000) {}
  /** Record `nonce`; false when it was seen before. */
  record(nonce: string): boolean {
    if (this.#seen.has(nonce)) return false;
    if (this.#seen.size >= this.max) {
      const oldest = this.#seen.values().next().value;
      if (oldest !== undefined) this.#seen.delete(oldest);
    }
    this.#seen.add(nonce);
    return true;
  }
}

/** The result of a successful agent-side handshake. */
export interface AcceptedPeer {
  /** The client's public key. */
  publicKey: string;
  /** The client's name in peers.json. */
  name: string;
}

/** Options of {@linkcode authenticateClient}. */
export interface ServerAuthOptions {
  /** The agent's identity. */
  identity: Identity;
  /** Look up a pinned peer by key (re-read per connection so `peer add` takes effect live). */
  findPeer: (publicKey: string) => { name: string } | undefined;
  /** Client nonces already used. */
  nonces: NonceLog;
  /** The agent's capabilities, sent in `welcome`. */
  capabilities: () => Promise<Capabilities>;
  /** Session id for `welcome`. */
  session: string;
  /** @default AUTH_TIMEOUT_MS */
  timeoutMs?: number;
}

/**
 * Agent side: run the handshake on `link`. Throws {@linkcode PeerError} "auth" or "protocol" with
 * the reason; the caller logs it and closes the link. Nothing else is read before success.
 */
export async function authenticateClient(
  link: Link,
  opts: ServerAuthOptions,
): Promise<AcceptedPeer> {
  const deadline = Date.now() + (opts.timeoutMs ?? AUTH_TIMEOUT_MS);
  const ns = freshNonce();
  const { identity } = opts;
  await link.send(encodeControl({
    type: "challenge",
    publicKey: identity.publicKey,
    certFingerprint: identity.certFingerprint,
    nonce: ns,
  }));
  const auth = await expect(link, "auth", deadline);
  const peer = opts.findPeer(auth.publicKey);
  if (!peer) throw new PeerError("auth", `unknown client key ${auth.publicKey}: not pinned`);
  const t = {
    certFingerprint: identity.certFingerprint,
    serverKey: identity.publicKey,
    clientKey: auth.publicKey,
    ns,
    nc: auth.nonce,
  };
  const ok = await verify(auth.publicKey, fromBase64url(auth.signature), transcript("client", t));
  if (!ok) throw new PeerError("auth", `bad signature from '${peer.name}'`);
  if (!opts.nonces.record(auth.nonce)) {
    throw new PeerError("auth", `replayed client nonce from '${peer.name}'`);
  }
  const signature = base64url(await sign(identity.privateKey, transcript("server", t)));
  await link.send(encodeControl({
    type: "welcome",
    signature,
    session: opts.session,
    capabilities: await opts.capabilities(),
  }));
  return { publicKey: auth.publicKey, name: peer.name };
}

/** Options of {@linkcode authenticateAgent}. */
export interface ClientAuthOptions {
  /** This node's identity. */
  identity: Identity;
  /** The agent's pinned public key. */
  peerKey: string;
  /** The agent's pinned certificate fingerprint, when pinned. */
  pinnedFingerprint?: string;
  /** Peer name, for messages. */
  peerName: string;
  /** @default AUTH_TIMEOUT_MS */
  timeoutMs?: number;
}

/**
 * Client side: run the handshake on `link`; returns the agent's capabilities and session id.
 * Throws {@linkcode PeerError} "pin-mismatch", "auth" or "protocol".
 */
export async function authenticateAgent(
  link: Link,
  opts: ClientAuthOptions,
): Promise<{ capabilities: Capabilities; session: string }> {
  const deadline = Date.now() + (opts.timeoutMs ?? AUTH_TIMEOUT_MS);
  const challenge = await expect(link, "challenge", deadline);
  if (challenge.publicKey !== opts.peerKey) {
    throw new PeerError(
      "pin-mismatch",
      `peer '${opts.peerName}' answered with key ${challenge.publicKey}, not the pinned ` +
        `${opts.peerKey}: another node answers at that address, or the peer was re-initialised`,
    );
  }
  const seen = link.remoteCertFingerprint;
  if (seen !== undefined && challenge.certFingerprint !== seen) {
    throw new PeerError(
      "pin-mismatch",
      `peer '${opts.peerName}' claims certificate ${challenge.certFingerprint} but the connection ` +
        `presents ${seen}: the connection is being intercepted`,
    );
  }
  if (opts.pinnedFingerprint && challenge.certFingerprint !== opts.pinnedFingerprint) {
    throw new PeerError(
      "pin-mismatch",
      `peer '${opts.peerName}' presents certificate ${challenge.certFingerprint}, not the pinned ` +
        opts.pinnedFingerprint,
    );
  }
  const nc = freshNonce();
  const t = {
    certFingerprint: challenge.certFingerprint,
    serverKey: challenge.publicKey,
    clientKey: opts.identity.publicKey,
    ns: challenge.nonce,
    nc,
  };
  const signature = base64url(await sign(opts.identity.privateKey, transcript("client", t)));
  await link.send(encodeControl({
    type: "auth",
    publicKey: opts.identity.publicKey,
    nonce: nc,
    signature,
  }));
  const welcome = await expect(link, "welcome", deadline);
  const ok = await verify(
    opts.peerKey,
    fromBase64url(welcome.signature),
    transcript("server", t),
  );
  if (!ok) {
    throw new PeerError("auth", `peer '${opts.peerName}' failed to prove its key (bad signature)`);
  }
  return { capabilities: welcome.capabilities, session: welcome.session };
}

async function expect<T extends "auth" | "challenge" | "welcome">(
  link: Link,
  type: T,
  deadline: number,
): Promise<ControlOf<T>> {
  const remaining = deadline - Date.now();
  if (remaining <= 0) throw new PeerError("timeout", `no '${type}' message in time`);
  const m = await link.next(remaining);
  if (m === null) {
    const why = await link.closed;
    throw new PeerError("auth", `connection closed before '${type}' (${why})`);
  }
  if (typeof m !== "string") {
    throw new PeerError("protocol", `binary frame before authentication (expected '${type}')`);
  }
  let msg;
  try {
    msg = decodeControl(m, type === "welcome" ? undefined : MAX_PREAUTH_BYTES);
  } catch (e) {
    if (e instanceof ProtocolError) {
      throw new PeerError("protocol", `malformed '${type}' message: ${e.message}`);
    }
    throw e;
  }
  if (msg.type === "error") {
    throw new PeerError("auth", `peer refused: ${msg.message}`);
  }
  if (msg.type !== type) {
    throw new PeerError(
      "protocol",
      `'${msg.type}' message before authentication (expected '${type}')`,
    );
  }
  return msg as ControlOf<T>;
}
