/**
 * The metrics a `u2cm agent` exposes: migrations by outcome, bytes moved, downtime and total-time
 * histograms, predictor latency, and migrations in flight. The engine and the agent call the
 * `record…` helpers; {@linkcode serveMetrics} exposes `registry`.
 *
 * @example
 * ```ts
 * import { createAgentMetrics } from "./agent_metrics.ts";
 * import { serveMetrics } from "./metrics.ts";
 * const metrics = createAgentMetrics();
 * metrics.recordMigration({ ok: true, engine: "delta", policy: "u2c", total_ms: 2300,
 *   downtime_ms: 180, bytes_sent: 268435456 });
 * const server = serveMetrics({ port: 9464, registry: metrics.registry });
 * ```
 *
 * @module
 */
import {
  type Counter,
  exponentialBuckets,
  type Gauge,
  type Histogram,
  MetricsRegistry,
} from "./metrics.ts";

/** Outcomes a migration is counted under. */
export const MIGRATION_OUTCOMES = ["success", "failed", "aborted"] as const;

/** The fields of a migrate result that metrics use (the `u2cm migrate --format json` shape). */
export interface MigrationSummary {
  /** Whether the workload runs on the destination. */
  ok: boolean;
  /** The engine used. */
  engine: string;
  /** The stop policy used. */
  policy: string;
  /** Total time, ms. */
  total_ms: number;
  /** Downtime from freeze to the restored tree running, ms. */
  downtime_ms: number;
  /** Bytes sent to the peer. */
  bytes_sent: number;
  /** Outcome when not ok: "failed" (source resumed) or "aborted" (user or peer). @default "failed" */
  outcome?: typeof MIGRATION_OUTCOMES[number];
}

/** The agent's metric set. */
export interface AgentMetrics {
  /** The registry holding every metric below. */
  registry: MetricsRegistry;
  /** `u2cm_migrations_total{outcome,engine,policy}`. */
  migrations: Counter;
  /** `u2cm_migration_bytes_total{direction}` (sent, received). */
  bytes: Counter;
  /** `u2cm_migration_downtime_seconds{engine}`. */
  downtime: Histogram;
  /** `u2cm_migration_duration_seconds{engine}`. */
  duration: Histogram;
  /** `u2cm_predictor_latency_seconds{model}`. */
  predictorLatency: Histogram;
  /** `u2cm_migrations_in_progress{role}` (source, destination). */
  inProgress: Gauge;
  /** Count a finished migration (outgoing) from its result. */
  recordMigration(result: MigrationSummary): void;
  /** Record one predictor call's latency in milliseconds. */
  recordPrediction(model: string, ms: number): void;
}

/** Create the agent's metrics in a fresh registry (or `registry`). */
export function createAgentMetrics(registry = new MetricsRegistry()): AgentMetrics {
  const migrations = registry.counter(
    "u2cm_migrations_total",
    "Migrations finished, by outcome, engine and policy.",
    ["outcome", "engine", "policy"],
  );
  const bytes = registry.counter(
    "u2cm_migration_bytes_total",
    "Bytes of migration data moved, by direction.",
    ["direction"],
  );
  const downtime = registry.histogram(
    "u2cm_migration_downtime_seconds",
    "Downtime from freezing the source to the restored tree running.",
    exponentialBuckets(0.01, 2, 12),
    ["engine"],
  );
  const duration = registry.histogram(
    "u2cm_migration_duration_seconds",
    "Total migration time, first round to restore.",
    exponentialBuckets(0.1, 2, 14),
    ["engine"],
  );
  const predictorLatency = registry.histogram(
    "u2cm_predictor_latency_seconds",
    "Time of one predictor call (phase 1 + phase 2) for a round.",
    exponentialBuckets(0.0005, 2, 14),
    ["model"],
  );
  const inProgress = registry.gauge(
    "u2cm_migrations_in_progress",
    "Migrations running now, by this node's role.",
    ["role"],
  );
  return {
    registry,
    migrations,
    bytes,
    downtime,
    duration,
    predictorLatency,
    inProgress,
    recordMigration(result) {
      const outcome = result.ok ? "success" : (result.outcome ?? "failed");
      migrations.inc({ outcome, engine: result.engine, policy: result.policy });
      bytes.inc({ direction: "sent" }, Math.max(0, result.bytes_sent));
      duration.observe(result.total_ms / 1000, { engine: result.engine });
      if (result.ok) downtime.observe(result.downtime_ms / 1000, { engine: result.engine });
    },
    recordPrediction(model, ms) {
      predictorLatency.observe(ms / 1000, { model });
    },
  };
}
