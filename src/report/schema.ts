/**
 * What `u2cm report` accepts, as zod schemas: a migration result (`u2cm migrate --format json`)
 * or simulation results (`u2cm simulate --format json`, a plain array of rows, or an object with
 * the trace name, bandwidth and rows). {@linkcode detectReport} tells which one a document is.
 *
 * @module
 */
import { z } from "zod";

const count = z.number().int().min(0);
const ms = z.number().min(0).finite();

/** One pre-copy round of a migration. */
export const MigrationRoundSchema = z.object({
  index: count,
  pages_sent: count,
  pages_dirtied: count,
  predicted_dirty: count.nullable().optional(),
  duration_ms: ms,
  bytes: count,
}).loose();

/** A `u2cm migrate --format json` result. */
export const MigrationResultSchema = z.object({
  ok: z.boolean(),
  engine: z.string().max(100),
  policy: z.string().max(100),
  total_ms: ms,
  downtime_ms: ms,
  bytes_sent: count,
  precopy_rounds: count,
  dest_pid: count.nullable().optional(),
  rounds: z.array(MigrationRoundSchema).max(100_000).default([]),
  phases: z.object({
    freeze_ms: ms,
    dump_ms: ms,
    transfer_ms: ms,
    restore_ms: ms,
  }).loose().optional(),
}).loose();

/** A migration result. */
export type MigrationResult = z.infer<typeof MigrationResultSchema>;

/** One simulated round. */
export const SimulationRoundSchema = z.object({
  index: count,
  pages_sent: count,
  pages_dirtied: count,
  predicted_dirty: count.nullable().optional(),
  duration_ms: ms,
}).loose();

/** One policy's simulated result. */
export const SimulationRowSchema = z.object({
  policy: z.string().max(100),
  total_ms: ms,
  downtime_ms: ms,
  bytes_sent: count,
  precopy_rounds: count,
  pages_resent: count,
  rounds: z.array(SimulationRoundSchema).max(100_000).optional(),
}).loose();

/** One policy's simulated result. */
export type SimulationRow = z.infer<typeof SimulationRowSchema>;

/** Simulation results with their context. */
export const SimulationDataSchema = z.object({
  trace: z.string().max(4096),
  bandwidth_bps: z.number().positive().finite(),
  results: z.array(SimulationRowSchema).min(1).max(1000),
}).loose();

/** Simulation results with their context (trace and bandwidth may be unknown for a bare array). */
export interface SimulationData {
  /** The trace replayed. */
  trace?: string;
  /** The modelled bandwidth. */
  bandwidth_bps?: number;
  /** One row per policy. */
  results: SimulationRow[];
}

/** A document `u2cm report` can render. */
export type ReportInput =
  | { kind: "migration"; data: MigrationResult }
  | { kind: "simulation"; data: SimulationData };

/** Thrown for a document that is neither a migration result nor simulation results. */
export class ReportInputError extends Error {
  /** @param message what is wrong, field by field */
  constructor(message: string) {
    super(message);
    this.name = "ReportInputError";
  }
}

/**
 * Decide what `value` is and validate it. An array or an object with `results` is simulation
 * output; an object with `engine` or `downtime_ms` is a migration result.
 */
export function detectReport(value: unknown): ReportInput {
  if (Array.isArray(value)) {
    const rows = z.array(SimulationRowSchema).min(1).max(1000).safeParse(value);
    if (rows.success) return { kind: "simulation", data: { results: rows.data } };
    throw new ReportInputError(`not simulation results: ${issues(rows.error)}`);
  }
  if (typeof value !== "object" || value === null) {
    throw new ReportInputError(
      "expected a JSON object (u2cm migrate --format json) or array (u2cm simulate --format json)",
    );
  }
  if ("results" in value) {
    const sim = SimulationDataSchema.safeParse(value);
    if (sim.success) return { kind: "simulation", data: sim.data };
    throw new ReportInputError(`not simulation results: ${issues(sim.error)}`);
  }
  const migration = MigrationResultSchema.safeParse(value);
  if (migration.success) return { kind: "migration", data: migration.data };
  throw new ReportInputError(`not a migration result: ${issues(migration.error)}`);
}

function issues(error: z.ZodError): string {
  return error.issues.slice(0, 6).map((i) =>
    `${i.path.length > 0 ? i.path.join(".") : "(top level)"}: ${i.message}`
  ).join("; ");
}
