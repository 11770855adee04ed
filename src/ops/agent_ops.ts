/**
 * The operations side of a running agent in one call: the log level from the configuration
 * (unless `--log-level` or `$U2CM_LOG_LEVEL` chose one), a structured logger, the agent metrics, and the loopback
 * `/metrics` endpoint on `config.metricsPort` (0 turns it off).
 *
 * @example
 * ```ts
 * import { loadConfig } from "./config.ts";
 * import { startAgentOps } from "./agent_ops.ts";
 * const ops = startAgentOps(loadConfig("/etc/u2cm/config.json"));
 * ops.log.info("agent started", { listen: "0.0.0.0:7070" });
 * await ops.close();
 * ```
 *
 * @module
 */
import { type AgentMetrics, createAgentMetrics } from "./agent_metrics.ts";
import type { Config } from "./config.ts";
import { isLogLevelExplicit, type Logger, logger, setLogLevel } from "./log.ts";
import { type MetricsServer, serveMetrics } from "./metrics.ts";

/** What {@linkcode startAgentOps} started. */
export interface AgentOps {
  /** Logger with `component: "agent"`. */
  log: Logger;
  /** The metrics to record into. */
  metrics: AgentMetrics;
  /** The metrics endpoint, when enabled. */
  server?: MetricsServer;
  /** Stop the metrics endpoint. */
  close(): Promise<void>;
}

/** Options of {@linkcode startAgentOps}. */
export interface AgentOpsOptions {
  /**
   * Keep the process-wide level instead of the config's.
   * @default isLogLevelExplicit() (`--log-level` or `$U2CM_LOG_LEVEL` win over the config)
   */
  keepLogLevel?: boolean;
}

/** Start logging and metrics for an agent running with `config`. */
export function startAgentOps(
  config: Pick<Config, "logLevel" | "metricsPort">,
  options: AgentOpsOptions = {},
): AgentOps {
  const { keepLogLevel = isLogLevelExplicit() } = options;
  if (!keepLogLevel) setLogLevel(config.logLevel);
  const log = logger({ component: "agent" });
  const metrics = createAgentMetrics();
  let server: MetricsServer | undefined;
  if (config.metricsPort > 0) {
    server = serveMetrics({ port: config.metricsPort, registry: metrics.registry });
    log.info("metrics endpoint listening", { url: `http://127.0.0.1:${server.port}/metrics` });
  }
  return { log, metrics, server, close: async () => await server?.shutdown() };
}
