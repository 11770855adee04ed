/**
 * Self-contained HTML reports with inline SVG: one migration, or a policy comparison.
 *
 * @module
 */
export { bytesText, renderMigrationReport } from "./migration.ts";
export { renderSimulationReport } from "./simulation.ts";
export { renderReport } from "./render.ts";
export {
  detectReport,
  type MigrationResult,
  type ReportInput,
  ReportInputError,
  type SimulationData,
  type SimulationRow,
} from "./schema.ts";
export { barChart, compactNumber, esc, lineChart, PALETTE, timelineChart } from "./svg.ts";
