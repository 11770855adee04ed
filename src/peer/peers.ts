/**
 * The pinned peers of a node: `peers.json` in the state directory (mode 0600), validated with zod on
 * every read. A peer is a name, an address, its Ed25519 public key and optionally the SHA-256
 * fingerprint of its TLS certificate.
 *
 * @example
 * ```ts
 * addPeer("/var/lib/u2cm", { name: "edge-b", address: "10.0.0.2:7070", publicKey: "…" });
 * console.log(listPeers("/var/lib/u2cm"));
 * ```
 *
 * @module
 */
import { z } from "zod";
import { parseHostPort } from "./address.ts";
import { PeerError } from "./errors.ts";
import { writePrivate } from "./identity.ts";
import { isPublicKeyText, normalizeFingerprint } from "./keys.ts";

/** The peers file name inside the state directory. */
export const PEERS_FILE = "peers.json";

/** Allowed peer names: a letter or digit, then letters, digits, '.', '_' or '-' (≤ 64). */
export const PEER_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const PeerSchema = z.object({
  name: z.string().regex(PEER_NAME_RE),
  address: z.string().max(300).refine((a) => parseHostPort(a) !== undefined, "HOST:PORT"),
  publicKey: z.string().refine(isPublicKeyText, "Ed25519 public key"),
  certFingerprint: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  /** The certificate itself (PEM), learnt on first contact; QUIC verifies against it. */
  certPem: z.string().max(8192).regex(
    /^-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----\s*$/,
  )
    .optional(),
  addedAt: z.string().max(40),
});

const PeersFileSchema = z.object({
  version: z.literal(1),
  peers: z.array(PeerSchema).max(10_000),
});

/** A pinned peer. */
export type Peer = z.infer<typeof PeerSchema>;

/** Read the pinned peers; an absent file means none. Throws {@linkcode PeerError} when invalid. */
export function listPeers(stateDir: string): Peer[] {
  const path = `${stateDir}/${PEERS_FILE}`;
  let text;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    throw new PeerError("unknown-peer", `${path} is not valid JSON; fix or remove it`);
  }
  const parsed = PeersFileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new PeerError(
      "unknown-peer",
      `${path} is invalid at ${issue.path.join(".") || "top level"}: ${issue.message}`,
    );
  }
  return parsed.data.peers;
}

/** The new peer's fields, before validation. */
export interface NewPeer {
  /** Local name of the peer. */
  name: string;
  /** Where its agent listens, `HOST:PORT`. */
  address: string;
  /** Its Ed25519 public key (as printed by its `u2cm init`). */
  publicKey: string;
  /** Its TLS certificate's SHA-256 fingerprint (hex, colons allowed). */
  certFingerprint?: string;
}

/**
 * Pin a peer. Throws {@linkcode PeerError} "rejected" with the reason when a field is invalid or
 * the name or key is already pinned (unless `replace`).
 */
export function addPeer(stateDir: string, peer: NewPeer, replace = false): Peer {
  if (!PEER_NAME_RE.test(peer.name)) {
    throw new PeerError(
      "rejected",
      `peer name '${peer.name}' is invalid: use letters, digits, '.', '_' or '-' (at most 64)`,
    );
  }
  if (!parseHostPort(peer.address)) {
    throw new PeerError(
      "rejected",
      `address '${peer.address}' is invalid: use HOST:PORT, e.g. 10.0.0.2:7070`,
    );
  }
  if (!isPublicKeyText(peer.publicKey)) {
    throw new PeerError(
      "rejected",
      `'${peer.publicKey}' is not an Ed25519 public key: copy the 43-character key printed by ` +
        "'u2cm init' on that node",
    );
  }
  let fingerprint: string | undefined;
  if (peer.certFingerprint !== undefined) {
    fingerprint = normalizeFingerprint(peer.certFingerprint);
    if (!fingerprint) {
      throw new PeerError(
        "rejected",
        `'${peer.certFingerprint}' is not a SHA-256 fingerprint (64 hex digits)`,
      );
    }
  }
  const peers = listPeers(stateDir);
  const others = peers.filter((p) => p.name !== peer.name);
  if (others.length !== peers.length && !replace) {
    throw new PeerError(
      "rejected",
      `a peer named '${peer.name}' is already pinned: remove it first ('u2cm peer remove ${peer.name}')`,
    );
  }
  const sameKey = others.find((p) => p.publicKey === peer.publicKey);
  if (sameKey) {
    throw new PeerError(
      "rejected",
      `this public key is already pinned as '${sameKey.name}'`,
    );
  }
  const entry: Peer = {
    name: peer.name,
    address: peer.address,
    publicKey: peer.publicKey,
    ...(fingerprint ? { certFingerprint: fingerprint } : {}),
    addedAt: new Date().toISOString(),
  };
  writePeers(stateDir, [...others, entry]);
  return entry;
}

/** Unpin a peer by name; false when there was none. */
export function removePeer(stateDir: string, name: string): boolean {
  const peers = listPeers(stateDir);
  const rest = peers.filter((p) => p.name !== name);
  if (rest.length === peers.length) return false;
  writePeers(stateDir, rest);
  return true;
}

/** The pinned peer named `name`; throws {@linkcode PeerError} "unknown-peer" when absent. */
export function findPeer(stateDir: string, name: string): Peer {
  const peer = listPeers(stateDir).find((p) => p.name === name);
  if (!peer) {
    throw new PeerError(
      "unknown-peer",
      `no peer named '${name}' in ${stateDir}/${PEERS_FILE}: add it with ` +
        "'u2cm peer add NAME HOST:PORT PUBKEY'",
    );
  }
  return peer;
}

/**
 * Record the certificate (PEM) of pinned peer `name`, whose SHA-256 fingerprint `fingerprint` was
 * proven in a signed handshake; pins the fingerprint too when it was not pinned.
 */
export function setPeerCert(
  stateDir: string,
  name: string,
  certPem: string,
  fingerprint: string,
): void {
  const peers = listPeers(stateDir);
  const peer = peers.find((p) => p.name === name);
  if (!peer) return;
  if (peer.certFingerprint && peer.certFingerprint !== fingerprint) {
    throw new PeerError("pin-mismatch", `certificate of '${name}' does not match its pin`);
  }
  peer.certFingerprint = fingerprint;
  peer.certPem = certPem;
  writePeers(stateDir, peers);
}

/** The pinned peer with public key `publicKey`, or undefined. */
export function findPeerByKey(stateDir: string, publicKey: string): Peer | undefined {
  return listPeers(stateDir).find((p) => p.publicKey === publicKey);
}

function writePeers(stateDir: string, peers: Peer[]): void {
  Deno.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const body = { version: 1 as const, peers };
  PeersFileSchema.parse(body);
  writePrivate(`${stateDir}/${PEERS_FILE}`, JSON.stringify(body, null, 2) + "\n");
}
