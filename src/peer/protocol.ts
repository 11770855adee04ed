/**
 * The peer protocol's control messages: versioned JSON objects, one per WebSocket text message or
 * QUIC control record, validated with zod at the edge. {@linkcode decodeControl} never throws
 * anything but {@linkcode ProtocolError}; every string, number and array is bounded.
 *
 * Order on a connection: agent → `challenge`; client → `auth`; agent → `welcome`. Only then may
 * either side send anything else (see auth.ts).
 *
 * @module
 */
import { z } from "zod";
import { LazyCheckReportSchema, RestoreResultSchema } from "../engine/contract.ts";
import { ProtocolError } from "./errors.ts";
import { ContainerCheckAnswerSchema, ContainerCheckSchema } from "./container_check.ts";

/** Protocol version carried in every message as `v`. */
export const PROTOCOL_VERSION = 1;
/** Largest control message accepted, in bytes of UTF-8 text. */
export const MAX_CONTROL_BYTES = 64 * 1024;
/** Largest control message accepted before authentication. */
export const MAX_PREAUTH_BYTES = 4096;
/** Largest restore request, in bytes of JSON. */
export const MAX_RESTORE_REQUEST_BYTES = 48 * 1024;
/** Largest expected migration size a prepare may announce (1 TiB). */
export const MAX_EXPECTED_BYTES = 2 ** 40;

/** Migration ids: a letter or digit, then letters, digits, '_' or '-' (at most 64). */
export const MIGRATION_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

const b64url = (bytes: number) =>
  z.string().length(Math.ceil(bytes * 4 / 3)).regex(/^[A-Za-z0-9_-]+$/);
const PublicKey = b64url(32);
const Nonce = b64url(32);
const Signature = b64url(64);
const Fingerprint = z.string().regex(/^[0-9a-f]{64}$/);
const MigrationId = z.string().regex(MIGRATION_ID_RE);
const Stream = z.number().int().min(1).max(0x7fff_ffff);
const Count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const Conn = z.number().int().min(1).max(0x7fff_ffff);
const Text = (max: number) => z.string().max(max);

/** What a node can do: sent by the agent after authentication, and by the client in `hello`. */
export const CapabilitiesSchema = z.object({
  /** CPU architecture (Deno.build.arch). */
  arch: Text(32),
  /** Kernel release. */
  kernel: Text(128),
  /** `criu --version` of the CRIU u2cm would run, or null when there is none. */
  criu: Text(64).nullable(),
  /** Dirty-page tracker backends that work on this node. */
  trackerBackends: z.array(Text(32)).max(8),
  /** Available memory in bytes. */
  freeMemoryBytes: Count,
  /** Free disk space under the state directory in bytes. */
  freeDiskBytes: Count,
  /** Transports the agent listens on. */
  transports: z.array(z.enum(["ws", "quic"])).max(2),
  /** u2cm version. */
  version: Text(32),
  /**
   * Page-batch codecs this node decodes ("lz4": FLAG_LZ4 page frames). Absent on older nodes: a
   * source compresses only for an agent that lists the codec.
   */
  codecs: z.array(Text(16)).max(8).optional(),
  /**
   * TCP port of the agent's sealed bulk stream (bulk_server.ts), on the agent's address. Absent
   * when the agent has none: the source then sends every frame over the WebSocket.
   */
  bulkPort: z.number().int().min(1).max(65535).optional(),
});

/** A node's capabilities. */
export type Capabilities = z.infer<typeof CapabilitiesSchema>;

/** A JSON value bounded in depth (8), keys per object (256) and array length (4096). */
const BoundedJson: z.ZodType<unknown> = z.lazy(() =>
  z.union([
    z.null(),
    z.boolean(),
    z.number().finite(),
    z.string().max(16 * 1024),
    z.array(BoundedJson).max(4096),
    z.record(z.string().max(256), BoundedJson).refine((o) => Object.keys(o).length <= 256),
  ])
);

/** The engine's restore request: a JSON object, bounded in size and depth. */
export const RestoreRequestSchema = z.record(z.string().max(256), BoundedJson).refine(
  (o) => Object.keys(o).length <= 256 && jsonDepth(o) <= 8,
  "restore request too large or too deep",
);

const base = { v: z.literal(PROTOCOL_VERSION) };

/**
 * What a source may ask the agent about one of its migrations (the commit's second phase and
 * recovery): its state, to resume the restored (stopped) copy, or to discard everything of it.
 */
export const RESOLVE_ACTIONS = ["query", "resume", "discard"] as const;

/** What the agent holds of a migration; "unknown": nothing, and it never will. */
export const RESOLVE_STATES = [
  "unknown",
  "receiving",
  "restoring",
  "ready",
  "resumed",
  "discarded",
] as const;

/** Every control message, discriminated by `type`. */
export const ControlSchema = z.discriminatedUnion("type", [
  z.object({
    ...base,
    type: z.literal("challenge"),
    publicKey: PublicKey,
    certFingerprint: Fingerprint,
    nonce: Nonce,
  }),
  z.object({
    ...base,
    type: z.literal("auth"),
    publicKey: PublicKey,
    nonce: Nonce,
    signature: Signature,
  }),
  z.object({
    ...base,
    type: z.literal("welcome"),
    signature: Signature,
    session: Text(64),
    capabilities: CapabilitiesSchema,
  }),
  z.object({ ...base, type: z.literal("hello"), capabilities: CapabilitiesSchema }),
  z.object({
    ...base,
    type: z.literal("prepare"),
    migrationId: MigrationId,
    stream: Stream,
    expectedBytes: z.number().int().min(0).max(MAX_EXPECTED_BYTES),
    resume: z.boolean(),
    /**
     * Also lay the pages out as CRIU pages images while they arrive (page_store.ts), for a
     * freeze that restores from them in place (scan-and-copy). Absent: no pages images.
     */
    pagesImage: z.boolean().optional(),
  }),
  z.object({
    ...base,
    type: z.literal("ack"),
    migrationId: MigrationId,
    stream: Stream,
    seq: Count,
    bytesStored: Count,
    pages: Count,
  }),
  z.object({
    ...base,
    type: z.literal("stopCopy"),
    migrationId: MigrationId,
    phase: z.enum(["start", "end"]),
  }),
  z.object({
    ...base,
    type: z.literal("progress"),
    migrationId: MigrationId,
    bytesSent: Count,
    round: z.number().int().min(0).max(1_000_000).optional(),
    phase: Text(32).optional(),
  }),
  z.object({
    ...base,
    type: z.literal("hashes"),
    migrationId: MigrationId,
    pid: z.number().int().min(1).max(0x7fff_ffff),
    reqId: z.number().int().min(1).max(0x7fff_ffff),
  }),
  z.object({
    ...base,
    type: z.literal("restore"),
    migrationId: MigrationId,
    request: RestoreRequestSchema,
  }),
  RestoreResultSchema.extend({
    ...base,
    type: z.literal("restoreResult"),
    migrationId: MigrationId,
  }),
  z.object({ ...base, type: z.literal("abort"), migrationId: MigrationId, reason: Text(1024) }),
  // Tunnels (tunnel.ts): the agent reports a connection to its endpoint; either side acknowledges
  // the bytes it wrote to its local socket (flow control) or resets a connection.
  z.object({ ...base, type: z.literal("tunnelOpen"), migrationId: MigrationId, conn: Conn }),
  z.object({
    ...base,
    type: z.literal("tunnelAck"),
    migrationId: MigrationId,
    conn: Conn,
    bytes: Count,
  }),
  z.object({
    ...base,
    type: z.literal("tunnelClose"),
    migrationId: MigrationId,
    conn: Conn,
    reason: Text(1024),
  }),
  z.object({
    ...base,
    type: z.literal("resolve"),
    migrationId: MigrationId,
    reqId: z.number().int().min(1).max(0x7fff_ffff),
    action: z.enum(RESOLVE_ACTIONS),
  }),
  z.object({
    ...base,
    type: z.literal("resolved"),
    migrationId: MigrationId,
    reqId: z.number().int().min(1).max(0x7fff_ffff),
    state: z.enum(RESOLVE_STATES),
    pid: z.number().int().min(1).max(0x7fff_ffff).optional(),
    error: Text(1024).optional(),
    /** To a query after post-copy: what the destination's check of the arriving pages saw. */
    lazy: LazyCheckReportSchema.optional(),
  }),
  z.object({
    ...base,
    type: z.literal("containerCheck"),
    migrationId: MigrationId,
    reqId: z.number().int().min(1).max(0x7fff_ffff),
    check: ContainerCheckSchema,
  }),
  z.object({
    ...base,
    type: z.literal("containerChecked"),
    migrationId: MigrationId,
    reqId: z.number().int().min(1).max(0x7fff_ffff),
    answer: ContainerCheckAnswerSchema,
  }),
  // The sealed bulk stream (bulk_server.ts): the client gives the agent, over this authenticated
  // TLS link, the token its TCP connection will present and the key its records are sealed with;
  // the agent answers once that connection proved the key (or not, in time).
  z.object({ ...base, type: z.literal("bulkOpen"), token: b64url(16), key: b64url(32) }),
  z.object({ ...base, type: z.literal("bulkAttached"), token: b64url(16), ok: z.boolean() }),
  z.object({ ...base, type: z.literal("error"), code: Text(32), message: Text(1024) }),
]);

/** A decoded control message. */
export type Control = z.infer<typeof ControlSchema>;
/** The control message of a given `type`. */
export type ControlOf<T extends Control["type"]> = Extract<Control, { type: T }>;

/** The control message types. */
export type ControlType = Control["type"];

/**
 * Decode and validate one control message; throws {@linkcode ProtocolError} (only) on anything
 * malformed, oversized, of another version, or unknown.
 *
 * @param text the message text
 * @param maxBytes the size limit @default MAX_CONTROL_BYTES
 */
export function decodeControl(text: string, maxBytes = MAX_CONTROL_BYTES): Control {
  if (typeof text !== "string") throw new ProtocolError("control message is not text");
  if (text.length > maxBytes) {
    throw new ProtocolError(`control message of ${text.length} bytes exceeds ${maxBytes}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ProtocolError("control message is not JSON");
  }
  if (typeof json === "object" && json !== null && "v" in json && json.v !== PROTOCOL_VERSION) {
    throw new ProtocolError(`protocol version ${String(json.v)} is not supported (need 1)`);
  }
  const parsed = ControlSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ProtocolError(
      `invalid control message at ${issue?.path.join(".") || "top level"}: ${issue?.message}`,
    );
  }
  return parsed.data;
}

/** Encode a control message (validated first: a bug here must not reach the wire). */
export function encodeControl(message: DistributiveOmit<Control, "v">): string {
  const full = { v: PROTOCOL_VERSION, ...message };
  const parsed = ControlSchema.safeParse(full);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ProtocolError(
      `refusing to send an invalid ${message.type} message at ${issue?.path.join(".")}: ` +
        issue?.message,
    );
  }
  const text = JSON.stringify(full);
  if (text.length > MAX_CONTROL_BYTES) {
    throw new ProtocolError(`${message.type} message of ${text.length} bytes is too large`);
  }
  return text;
}

/** `Omit` over each member of a union. */
export type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

function jsonDepth(value: unknown, depth = 0): number {
  if (depth > 9 || value === null || typeof value !== "object") return depth;
  let max = depth + 1;
  for (const v of Object.values(value as Record<string, unknown>)) {
    max = Math.max(max, jsonDepth(v, depth + 1));
    if (max > 9) break;
  }
  return max;
}
