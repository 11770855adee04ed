/**
 * Documented exit codes and the error type that carries one to `main.ts`.
 *
 * @module
 */

/** Exit codes of the `u2cm` command. Stable: scripts rely on them. */
export const ExitCode = {
  /** Success. */
  Ok: 0,
  /** Unexpected failure (a bug, or an error without a more specific code). */
  Failure: 1,
  /** Bad command-line usage: unknown flag, missing or invalid argument. */
  Usage: 2,
  /** The target process does not exist (or exited). */
  NoTarget: 3,
  /** Not permitted: needs root or ptrace rights. */
  NotPermitted: 4,
  /** The environment lacks something: CRIU, compiler, kernel feature. */
  Environment: 5,
  /** Malformed input data: trace, model, config, message. */
  BadInput: 6,
  /** Peer unreachable, refused, or failed authentication. */
  Peer: 7,
  /** Migration failed; the source workload was resumed and keeps running. */
  MigrationFailed: 8,
  /** Interrupted by a signal (Ctrl-C). */
  Interrupted: 130,
} as const;

/** An exit code value. */
export type ExitCodeValue = typeof ExitCode[keyof typeof ExitCode];

/** An error meant for the user: printed without a stack trace, exits with `code`. */
export class CliError extends Error {
  /**
   * @param message what went wrong and what to do about it
   * @param code the exit code @default ExitCode.Failure
   */
  constructor(message: string, readonly code: ExitCodeValue = ExitCode.Failure) {
    super(message);
    this.name = "CliError";
  }
}
