/**
 * Peer agents and the authenticated, encrypted channel between them.
 *
 * - {@linkcode connectPeer} (source side): connect to a pinned peer's agent, authenticate both
 *   ways, open {@linkcode MigrationChannel}s for pages, image files and the restore request.
 * - {@linkcode startAgent} (destination side): the daemon behind `u2cm agent`; stores incoming
 *   migrations in {@linkcode PageStore}s and runs the engine's {@linkcode RestoreHandler}.
 * - {@linkcode openTunnel} (source side) with `ctx.openTunnel` in the {@linkcode RestoreHandler}
 *   (destination side): loopback TCP endpoints whose connections are carried inside the channel
 *   (post-copy page traffic between the two CRIUs).
 * - Identity and pinning: {@linkcode initIdentity}, {@linkcode addPeer} and friends.
 *
 * @module
 */
export { connectPeer } from "./client.ts";
export type { ConnectPeerOptions, OpenMigrationOptions, PeerClient } from "./client.ts";
export { BatchCompressor, COMPRESS_MODES } from "./compression.ts";
export type { CompressionStats, CompressMode } from "./compression.ts";
export type { MigrationChannel, PageBatch } from "./channel.ts";
export { startAgent } from "./agent.ts";
export type { RunningAgent, StartAgentOptions } from "./agent.ts";
export type {
  ResolveAction,
  ResolveAnswer,
  ResolveHandler,
  RestoreHandler,
  RestoreRequest,
  RestoreResult,
} from "./agent_context.ts";
export { PageStore } from "./page_store.ts";
export { carriesTunnels, freeLoopbackPort, openTunnel } from "./tunnel.ts";
export type { OpenTunnelOptions, Tunnel, TunnelStats } from "./tunnel.ts";
export type { PageStoreEntry, PageStoreOptions, StoredFile } from "./page_store.ts";
export type { Capabilities } from "./protocol.ts";
export { PeerError, ProtocolError } from "./errors.ts";
export type { PeerErrorCode } from "./errors.ts";
export { hasIdentity, initIdentity, loadIdentity } from "./identity.ts";
export type { Identity } from "./identity.ts";
export { addPeer, findPeer, listPeers, removePeer } from "./peers.ts";
export type { NewPeer, Peer } from "./peers.ts";
export { createLogger, LOG_LEVELS } from "./log.ts";
export type { LogLevel, LogSink } from "./log.ts";
export { nativeHashing, pageHashes } from "../native/page_hash.ts";
export * from "./container_check.ts";
