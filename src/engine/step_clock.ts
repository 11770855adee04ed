/**
 * A clock for the steps of a phase: each call adds the time since the previous one (or since the
 * clock was made) to one of the phase's optional step fields.
 *
 * @example
 * ```ts
 * const step = stepClock(phases);
 * await sendPages();
 * step("transfer_pages_ms"); // phases.transfer_pages_ms += the time sendPages took
 * ```
 *
 * @module
 */
import type { PhaseTimes } from "./types.ts";

/** The steps of the scan-and-copy transfer ({@linkcode PhaseTimes.transfer_pages_ms}). */
export type TransferStep =
  | "transfer_pages_ms"
  | "transfer_eager_ms"
  | "transfer_pagemap_ms"
  | "transfer_manifest_ms"
  | "transfer_files_ms"
  | "transfer_flush_ms";

/**
 * A clock that adds the time since its last call to `phases[key]`.
 *
 * @example
 * ```ts
 * const step = stepClock(phases);
 * step("transfer_flush_ms");
 * ```
 */
export function stepClock(phases: PhaseTimes): (key: TransferStep) => void {
  let at = performance.now();
  return (key) => {
    const now = performance.now();
    phases[key] = (phases[key] ?? 0) + (now - at);
    at = now;
  };
}
