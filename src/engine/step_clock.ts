/**
 * A clock for the steps of a phase: each call adds the time since the previous one (or since the
 * clock was made) to one of the phase's optional step fields (or to one entry of a record of
 * steps, such as a restore's `steps_ms`).
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

/** Options of {@linkcode stepClock}. */
export interface StepClockOptions {
  /** Keep each step's total rounded to this many decimals (as reported; unrounded when absent). */
  decimals?: number;
}

/**
 * A clock that adds the time since its last call to `into[key]`: a phase's transfer steps
 * ({@linkcode TransferStep}), or any record of step names (a restore's `steps_ms`).
 *
 * @example
 * ```ts
 * const step = stepClock(phases);
 * step("transfer_flush_ms");
 * const steps: Record<string, number> = {};
 * const restoreStep = stepClock(steps, { decimals: 1 });
 * restoreStep("copy_ms"); // steps.copy_ms: the milliseconds since the clock was made, to 0.1
 * ```
 */
export function stepClock(phases: PhaseTimes): (key: TransferStep) => void;
export function stepClock<K extends string>(
  into: Partial<Record<K, number>>,
  options?: StepClockOptions,
): (key: K) => void;
export function stepClock(
  target: PhaseTimes | Partial<Record<string, number>>,
  options: StepClockOptions = {},
): (key: string) => void {
  const into = target as Partial<Record<string, number>>;
  const scale = options.decimals === undefined ? undefined : 10 ** options.decimals;
  let at = performance.now();
  return (key) => {
    const now = performance.now();
    const total = (into[key] ?? 0) + (now - at);
    into[key] = scale === undefined ? total : Math.round(total * scale) / scale;
    at = now;
  };
}
