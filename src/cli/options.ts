/**
 * Parsers for command-line option values that raise {@linkcode CliError} with exit code `Usage`.
 *
 * @module
 */
import { CliError, ExitCode } from "./errors.ts";

/** Parse a positive integer option (e.g. a pid or a count). */
export function parsePositiveInt(name: string, value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n <= 0) {
    throw new CliError(`${name} must be a positive whole number, got '${value}'`, ExitCode.Usage);
  }
  return n;
}

/** Parse a positive number option within `[min, max]`. */
export function parseNumberInRange(name: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n < min || n > max) {
    throw new CliError(
      `${name} must be a number from ${min} to ${max}, got '${value}'`,
      ExitCode.Usage,
    );
  }
  return n;
}

/** Check that `value` is one of `choices`. */
export function parseChoice<T extends string>(
  name: string,
  value: string,
  choices: readonly T[],
): T {
  if (!(choices as readonly string[]).includes(value)) {
    throw new CliError(
      `${name} must be one of ${choices.join(", ")}, got '${value}'`,
      ExitCode.Usage,
    );
  }
  return value as T;
}

/** Throw `NoTarget` unless a process with this pid exists. */
export function requireProcess(pid: number): void {
  try {
    Deno.statSync(`/proc/${pid}`);
  } catch {
    throw new CliError(`no process with pid ${pid} (is it still running?)`, ExitCode.NoTarget);
  }
}
