/**
 * Opening one authenticated link to a pinned peer's agent, on either transport: connect, check the
 * pins, run the signed handshake (auth.ts), announce this node's capabilities. Both transports
 * verify the agent's TLS certificate against the pinned certificate itself (Deno's TLS, QUIC); a
 * peer pinned by fingerprint only gets one probe connection over node:tls first, which checks the
 * fingerprint, authenticates, and learns the certificate (kept in peers.json).
 *
 * @example
 * ```ts
 * const link = await openPeerLink({ identity, peer, stateDir: "/var/lib/u2cm", transport: "ws" });
 * ```
 *
 * @module
 */
import { parseHostPort } from "./address.ts";
import { loadAead } from "./aead.ts";
import { authenticateAgent } from "./auth.ts";
import { openBulk } from "./bulk_client.ts";
import { probeCapabilities } from "./capabilities.ts";
import { PeerError } from "./errors.ts";
import { MAX_FRAME_BYTES } from "./frames.ts";
import type { Identity } from "./identity.ts";
import type { Link } from "./link.ts";
import type { LogSink } from "./log.ts";
import { type Peer, setPeerCert } from "./peers.ts";
import type { Capabilities } from "./protocol.ts";
import { encodeControl } from "./protocol.ts";
import { connectQuicLink } from "./quic.ts";
import { connectWsLink } from "./ws_client.ts";

/** Options of {@linkcode openPeerLink}. */
export interface OpenPeerLinkOptions {
  /** This node's identity. */
  identity: Identity;
  /** The pinned peer (its `certPem` is filled in once learnt). */
  peer: Peer;
  /** This node's state directory (peers.json, capabilities). */
  stateDir: string;
  /** Transport. */
  transport: "ws" | "quic";
  /** Connect-and-authenticate timeout. @default 10000 */
  timeoutMs?: number;
  /** Close the link after this long without hearing from the agent. @default 8000 */
  deadAfterMs?: number;
  /** Log sink. */
  log: LogSink;
  /**
   * Send binary frames on a sealed bulk stream when the agent offers one (WebSocket transport
   * only; see bulk_client.ts). @default true
   */
  bulk?: boolean;
}

/** Open and authenticate a link; resolves with it and the agent's capabilities. */
export async function openPeerLink(
  opts: OpenPeerLinkOptions,
): Promise<{ link: Link; capabilities: Capabilities }> {
  const { peer } = opts;
  const addr = parseHostPort(peer.address)!;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const pem = await ensureCertPem(opts, addr.hostname, addr.port, timeoutMs);
  const link = opts.transport === "quic"
    ? await connectQuicLink({
      hostname: addr.hostname,
      port: addr.port,
      certPem: pem,
      certFingerprint: peer.certFingerprint!,
      timeoutMs,
      maxMessageBytes: MAX_FRAME_BYTES + 1024,
      deadAfterMs: opts.deadAfterMs,
    })
    : await connectWsLink({
      hostname: addr.hostname,
      port: addr.port,
      timeoutMs,
      pinnedFingerprint: peer.certFingerprint,
      pinnedCertPem: pem,
      deadAfterMs: opts.deadAfterMs,
    });
  let capabilities: Capabilities;
  try {
    capabilities = (await authenticate(link, opts, timeoutMs)).capabilities;
    await link.send(encodeControl({
      type: "hello",
      capabilities: probeCapabilities({ stateDir: opts.stateDir }),
    }));
  } catch (e) {
    link.close(4401, "authentication failed");
    throw e;
  }
  const aead = opts.transport === "ws" && opts.bulk !== false && capabilities.bulkPort
    ? loadAead()
    : null;
  if (!aead || !capabilities.bulkPort) return { link, capabilities };
  try {
    const sealed = await openBulk(link, {
      hostname: addr.hostname,
      port: capabilities.bulkPort,
      aead,
      timeoutMs,
    });
    return { link: sealed, capabilities };
  } catch (e) {
    // The agent may still answer on this link: start over on a fresh one, frames on the WebSocket.
    link.close(1000, "bulk stream failed");
    opts.log({
      level: "warn",
      msg: "no sealed bulk stream; sending frames over the WebSocket",
      peer: peer.name,
      error: (e as Error).message,
    });
    return await openPeerLink({ ...opts, bulk: false });
  }
}

function authenticate(link: Link, opts: OpenPeerLinkOptions, timeoutMs: number) {
  return authenticateAgent(link, {
    identity: opts.identity,
    peerKey: opts.peer.publicKey,
    pinnedFingerprint: opts.peer.certFingerprint,
    peerName: opts.peer.name,
    timeoutMs,
  });
}

/**
 * The peer's certificate (PEM). Unknown yet: a probe link over node:tls checks the fingerprint
 * pin (when there is one), authenticates the agent, and the certificate it proved is kept.
 */
async function ensureCertPem(
  opts: OpenPeerLinkOptions,
  hostname: string,
  port: number,
  timeoutMs: number,
): Promise<string> {
  const { peer } = opts;
  if (peer.certPem && peer.certFingerprint) return peer.certPem;
  const probe = await connectWsLink({
    hostname,
    port,
    timeoutMs,
    pinnedFingerprint: peer.certFingerprint,
  });
  try {
    await authenticate(probe, opts, timeoutMs);
    const pem = probe.remoteCertPem, fp = probe.remoteCertFingerprint;
    if (!pem || !fp) {
      throw new PeerError("pin-mismatch", `could not learn the certificate of '${peer.name}'`);
    }
    peer.certPem = pem;
    peer.certFingerprint = fp;
    try {
      setPeerCert(opts.stateDir, peer.name, pem, fp);
    } catch (e) {
      opts.log({ level: "warn", msg: "could not record the peer certificate", error: String(e) });
    }
    return pem;
  } finally {
    probe.close(1000, "certificate learnt");
  }
}
