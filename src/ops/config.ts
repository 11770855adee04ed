/**
 * The node configuration file (`/etc/u2cm/config.json`): what the agent listens on (and the port
 * of its sealed bulk stream), where it keeps state, its transport, known peers, engine and policy defaults, limits, log level and metrics
 * port. Validated with zod on every read; unknown keys are errors so typos do not go unnoticed.
 *
 * @example
 * ```ts
 * import { defaultConfig, loadConfig, writeConfig } from "./config.ts";
 * writeConfig("/tmp/u2cm.json", defaultConfig());
 * const config = loadConfig("/tmp/u2cm.json");
 * console.log(config.listen); // "0.0.0.0:7070"
 * ```
 *
 * @module
 */
import { z } from "zod";
import { parseHostPort } from "../peer/address.ts";
import { PEER_NAME_RE } from "../peer/peers.ts";
import { POLICY_NAMES } from "../policy/registry.ts";
import { LOG_LEVELS } from "./log.ts";

/** Where `u2cm install` puts the configuration (under `--prefix` when given). */
export const DEFAULT_CONFIG_PATH = "/etc/u2cm/config.json";

/** Engines a migration can use (`auto` picks by capability). */
export const ENGINE_NAMES = ["auto", "delta", "predump", "lazy", "hybrid"] as const;

/** Transports between agents. */
export const TRANSPORT_NAMES = ["ws", "quic"] as const;

const absolutePath = z.string().min(1).max(4096).refine(
  (p) => p.startsWith("/") && !p.split("/").includes(".."),
  "an absolute path without '..'",
);
const hostPort = z.string().max(300).refine((a) => parseHostPort(a) !== undefined, "HOST:PORT");
const policyName = z.string().refine(
  (p) => /^fixed-\d+$/.test(p) || (POLICY_NAMES as readonly string[]).includes(p),
  `one of ${POLICY_NAMES.join(", ")} (fixed-K as fixed-0, fixed-1, …)`,
);

const PeerEntrySchema = z.object({
  name: z.string().regex(PEER_NAME_RE, "a letter or digit, then letters, digits, . _ - (≤ 64)"),
  address: hostPort,
  publicKey: z.string().max(200).optional(),
  certFingerprint: z.string().regex(/^[0-9a-f]{64}$/, "64 lowercase hex digits").optional(),
}).strict();

const LimitsSchema = z.object({
  maxConcurrentMigrations: z.number().int().min(1).max(64).default(2),
  maxMigrationBytes: z.number().int().min(1 << 20).max(2 ** 50).default(64 * 2 ** 30),
  migrationTimeoutSeconds: z.number().int().min(1).max(86_400).default(600),
  maxBandwidthBps: z.number().int().min(1).max(2 ** 40).optional(),
}).strict();

/**
 * Container runtimes (issue 16): the environment podman runs with on this node, and runc's state
 * dir. Absent keys leave the agent's own environment as it is.
 */
const ContainersSchema = z.object({
  /** podman's storage.conf (graphroot, runroot) — exported to podman as CONTAINERS_STORAGE_CONF. */
  CONTAINERS_STORAGE_CONF: absolutePath.optional(),
  /** podman's containers.conf (runtime, cgroup manager, ulimits, …) — as CONTAINERS_CONF. */
  CONTAINERS_CONF: absolutePath.optional(),
  /** The podman binary. */
  podman: absolutePath.optional(),
  /** runc's state directory (`runc --root`) for runc bundles. */
  runcRoot: absolutePath.optional(),
  /** Cgroup parent given to containers restored here (one-host setups need distinct ones). */
  cgroupParent: absolutePath.optional(),
}).strict();

/** The zod schema of the configuration file. */
export const ConfigSchema = z.object({
  version: z.literal(1),
  listen: hostPort.default("0.0.0.0:7070"),
  stateDir: absolutePath.default("/var/lib/u2cm"),
  cacheDir: absolutePath.default("/var/cache/u2cm"),
  transport: z.enum(TRANSPORT_NAMES).default("ws"),
  /**
   * TCP port of the agent's sealed bulk stream (`u2cm agent --bulk-port`): 0 = any free port,
   * "off" = every frame over the WebSocket. Absent: the flag's default (0).
   */
  bulkPort: z.union([z.number().int().min(0).max(65535), z.literal("off")]).optional(),
  peers: z.array(PeerEntrySchema).max(1000).default([]),
  engine: z.enum(ENGINE_NAMES).default("auto"),
  policy: policyName.default("u2c"),
  limits: LimitsSchema.default(LimitsSchema.parse({})),
  logLevel: z.enum(LOG_LEVELS).default("info"),
  metricsPort: z.number().int().min(0).max(65535).default(9464),
  capabilities: z.union([z.literal("all"), z.array(z.string().regex(/^CAP_[A-Z_]+$/)).max(64)])
    .optional(),
  containers: ContainersSchema.optional(),
}).strict();

/** A validated configuration (defaults filled in). */
export type Config = z.infer<typeof ConfigSchema>;

/** The `containers` section. */
export type ContainersConfig = z.infer<typeof ContainersSchema>;

/** A peer listed in the configuration. */
export type ConfigPeer = z.infer<typeof PeerEntrySchema>;

/** Thrown when a configuration file is missing, not JSON, or invalid; names file and field. */
export class ConfigError extends Error {
  /**
   * @param file the configuration file
   * @param problem what is wrong, field by field
   */
  constructor(readonly file: string, readonly problem: string) {
    super(`${file}: ${problem}`);
    this.name = "ConfigError";
  }
}

/** The default configuration, with `overrides` applied and validated. */
export function defaultConfig(overrides: Partial<Config> = {}): Config {
  return parseConfig({ version: 1, ...overrides }, "(defaults)");
}

/**
 * Validate a parsed JSON value as a configuration.
 *
 * @param value the parsed JSON
 * @param file the file name used in errors
 */
export function parseConfig(value: unknown, file: string): Config {
  const parsed = ConfigSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.slice(0, 8).map((i) =>
    `${i.path.length > 0 ? i.path.join(".") : "(top level)"}: ${i.message}`
  );
  throw new ConfigError(file, `invalid configuration:\n  ${issues.join("\n  ")}`);
}

/** Read and validate a configuration file; throws {@linkcode ConfigError}. */
export function loadConfig(file: string): Config {
  let text: string;
  try {
    text = Deno.readTextFileSync(file);
  } catch (e) {
    const problem = e instanceof Deno.errors.NotFound
      ? "configuration file not found (create it with 'u2cm install' or pass --config)"
      : `cannot read the configuration: ${(e as Error).message}`;
    throw new ConfigError(file, problem);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(file, `not valid JSON: ${(e as Error).message}`);
  }
  return parseConfig(json, file);
}

/** Write a configuration file (mode 0640), creating its directory. */
export function writeConfig(file: string, config: Config): void {
  const dir = file.slice(0, file.lastIndexOf("/"));
  if (dir) Deno.mkdirSync(dir, { recursive: true });
  Deno.writeTextFileSync(file, JSON.stringify(config, null, 2) + "\n", { mode: 0o640 });
}
