/**
 * Render whichever kind of report a validated document is.
 *
 * @module
 */
import { renderMigrationReport } from "./migration.ts";
import type { ReportInput } from "./schema.ts";
import { renderSimulationReport } from "./simulation.ts";

/**
 * Render a report page for a document checked by `detectReport`.
 *
 * @example
 * ```ts
 * import { detectReport } from "./schema.ts";
 * import { renderReport } from "./render.ts";
 * const html = renderReport(detectReport([{ policy: "u2c", total_ms: 9, downtime_ms: 1,
 *   bytes_sent: 10, precopy_rounds: 1, pages_resent: 0 }]));
 * ```
 */
export function renderReport(input: ReportInput): string {
  return input.kind === "migration"
    ? renderMigrationReport(input.data)
    : renderSimulationReport(input.data);
}
