/**
 * The agent: listens for pinned peers, authenticates them and receives their migrations into
 * per-migration stores under `<state-dir>/migrations/<id>/`.
 *
 * @example
 * ```ts
 * const agent = await startAgent({ listen: "0.0.0.0:7070", stateDir: "/var/lib/u2cm" });
 * // … later
 * await agent.close();
 * ```
 *
 * @module
 */
import { parseHostPort } from "./address.ts";
import { loadAead } from "./aead.ts";
import { NonceLog } from "./auth.ts";
import { serveBulk } from "./bulk_server.ts";
import { probeCapabilities } from "./capabilities.ts";
import type { ContainerCheckHandler } from "./container_check.ts";
import { PeerError } from "./errors.ts";
import { MAX_FRAME_BYTES } from "./frames.ts";
import { loadIdentity } from "./identity.ts";
import type { Link } from "./link.ts";
import { type LogSink, silentLog } from "./log.ts";
import type { IncomingMigration } from "./migration.ts";
import { findPeerByKey } from "./peers.ts";
import type { AgentContext, ResolveHandler, RestoreHandler } from "./agent_context.ts";
import { runSession } from "./session.ts";
import { serveQuic } from "./quic.ts";
import { serveWs } from "./ws_server.ts";

/** Options of {@linkcode startAgent}. */
export interface StartAgentOptions {
  /** `HOST:PORT` to listen on (port 0 picks a free one). */
  listen: string;
  /** The state directory holding the identity, peers.json and migrations. */
  stateDir: string;
  /** Transport. @default "ws" */
  transport?: "ws" | "quic";
  /** The engine's restore hook; without it restore requests are answered `ok: false`. */
  onRestore?: RestoreHandler;
  /** The engine's hook for restored migrations (resume, discard, query). @default none */
  onResolve?: ResolveHandler;
  /** Answers container pre-checks (issue 16). @default none: no containers taken */
  onContainerCheck?: ContainerCheckHandler;
  /** Structured log sink. @default silent */
  log?: (rec: Record<string, unknown>) => void;
  /** How long a migration whose source disconnected waits for it to resume. @default 30000 */
  resumeTimeoutMs?: number;
  /** Pages each migration keeps in memory before spilling to disk, in bytes. @default 256 MiB */
  memoryLimitBytes?: number;
  /** Most migrations received at once. @default 8 */
  maxMigrations?: number;
  /** Close a connection after this long without any message. @default 120000 */
  idleTimeoutMs?: number;
  /**
   * TCP port of the sealed bulk stream (bulk_server.ts) on the listen address; 0 picks a free one
   * (peers learn it after authenticating), null turns it off (every frame then travels over the
   * WebSocket). Needs the system's OpenSSL (`libcrypto.so.3`); without it there is none.
   * @default 0
   */
  bulkPort?: number | null;
  /**
   * The bulk port announced to peers when it differs from the bound one: a port forwarded to
   * `bulkPort` (NAT, a firewall's port mapping, a relay). Peers dial it on the host they reached
   * the agent at. @default the bound bulk port
   */
  bulkAdvertise?: number;
}

/** A running agent. */
export interface RunningAgent {
  /** The bound port. */
  port: number;
  /** The bound port of the sealed bulk stream, when there is one. */
  bulkPort?: number;
  /** Stop listening, drop connections and delete unfinished migrations' stores. */
  close(): Promise<void>;
}

/**
 * Start an agent. Throws {@linkcode PeerError} "identity" when the state dir has no identity and
 * "rejected" for a malformed listen address.
 */
export async function startAgent(opts: StartAgentOptions): Promise<RunningAgent> {
  const {
    stateDir,
    transport = "ws",
    resumeTimeoutMs = 30_000,
    memoryLimitBytes = 256 * 2 ** 20,
    maxMigrations = 8,
    idleTimeoutMs = 120_000,
  } = opts;
  const log: LogSink = opts.log ?? silentLog;
  const parsed = parseHostPort(opts.listen, true);
  if (!parsed) {
    throw new PeerError("rejected", `listen address '${opts.listen}' is not HOST:PORT`);
  }
  const addr = parsed;
  const identity = await loadIdentity(stateDir);
  clearStaleMigrations(stateDir, log);
  const aead = opts.bulkPort === null ? null : loadAead();
  const bulk = aead
    ? await serveBulk({
      hostname: addr.hostname,
      port: opts.bulkPort ?? 0,
      aead,
      maxMessageBytes: MAX_FRAME_BYTES + 1024,
    })
    : undefined;
  const migrations = new Map<string, IncomingMigration>();
  const ctx: AgentContext = {
    identity,
    stateDir,
    migrations,
    nonces: new NonceLog(),
    findPeer: (key) => findPeerByKey(stateDir, key),
    capabilities: () =>
      Promise.resolve({
        ...probeCapabilities({ stateDir, transports: [transport] }),
        ...(bulk ? { bulkPort: opts.bulkAdvertise ?? bulk.port } : {}),
      }),
    bulk,
    onRestore: opts.onRestore,
    onResolve: opts.onResolve,
    onContainerCheck: opts.onContainerCheck,
    log,
    resumeTimeoutMs,
    memoryLimitBytes,
    maxMigrations,
    idleTimeoutMs,
  };
  const sessions = new Set<Promise<void>>();
  const onLink = (link: Link) => {
    log({
      level: "debug",
      msg: "connection",
      remote: link.remoteAddress,
      transport: link.transport,
    });
    const s = runSession(link, ctx);
    sessions.add(s);
    s.finally(() => sessions.delete(s));
  };
  let listening: { port: number; close(): Promise<void> };
  const ws = (port: number) =>
    serveWs({
      hostname: addr.hostname,
      port,
      cert: identity.certPem,
      key: identity.keyPem,
      maxMessageBytes: MAX_FRAME_BYTES + 1024,
      onLink,
      onError: (e) => log({ level: "error", msg: "listener error", error: String(e) }),
    });
  try {
    listening = await listen();
  } catch (e) {
    bulk?.close();
    throw e;
  }
  async function listen(): Promise<{ port: number; close(): Promise<void> }> {
    if (transport === "quic") {
      // QUIC on UDP, plus WebSocket on the same TCP port: peers fetch and pin the certificate there
      // (QUIC verifies against the pinned PEM) and can fall back to it.
      const quic = await serveQuic({
        hostname: addr.hostname,
        port: addr.port,
        cert: identity.certPem,
        key: identity.keyPem,
        maxMessageBytes: MAX_FRAME_BYTES + 1024,
        onLink,
      });
      let tcp;
      try {
        tcp = await ws(quic.port);
      } catch (e) {
        await quic.close();
        throw e;
      }
      return {
        port: quic.port,
        close: async () => {
          await quic.close();
          await tcp.close();
        },
      };
    }
    return await ws(addr.port);
  }
  log({
    level: "info",
    msg: "agent listening",
    transport,
    hostname: addr.hostname,
    port: listening.port,
    bulkPort: bulk?.port,
    bulkAdvertise: bulk ? opts.bulkAdvertise : undefined,
    publicKey: identity.publicKey,
    certFingerprint: identity.certFingerprint,
  });
  return {
    port: listening.port,
    bulkPort: bulk?.port,
    close: async () => {
      await listening.close();
      bulk?.close();
      await Promise.race([
        Promise.allSettled([...sessions]),
        new Promise((r) => setTimeout(r, 2000)),
      ]);
      for (const mig of migrations.values()) {
        if (mig.status === "restored") mig.drop();
        else if (mig.status !== "aborted") mig.abort("agent shutting down", log);
      }
      migrations.clear();
      log({ level: "info", msg: "agent stopped" });
    },
  };
}

/**
 * Stores left by an earlier agent process cannot be resumed (their index was in memory): remove
 * them. Only store directories go; the journal records beside them (`<id>.json`, the source's)
 * stay, and so do restored copies, which the engine's records keep.
 */
function clearStaleMigrations(stateDir: string, log: LogSink): void {
  const dir = `${stateDir}/migrations`;
  try {
    for (const entry of Deno.readDirSync(dir)) {
      if (!entry.isDirectory) continue;
      Deno.removeSync(`${dir}/${entry.name}`, { recursive: true });
      log({ level: "warn", msg: "removed a stale migration store", migrationId: entry.name });
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
}
