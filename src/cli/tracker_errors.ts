/**
 * Translation of tracker failures into user-facing {@linkcode CliError}s with exit codes.
 *
 * @module
 */
import { CliError, ExitCode } from "./errors.ts";

/** Map an error thrown while creating or running a tracker to a CliError. */
export function trackerError(e: unknown, pid: number): unknown {
  if (e instanceof CliError) return e;
  const err = e as Error;
  const name = err?.name ?? "";
  if (name === "NoSuchProcessError" || e instanceof Deno.errors.NotFound) {
    return new CliError(`no process with pid ${pid} (is it still running?)`, ExitCode.NoTarget);
  }
  if (name === "TrackerPermissionError") {
    return new CliError(
      `${err.message}; run as root, or as the process's owner with ptrace allowed`,
      ExitCode.NotPermitted,
    );
  }
  if (name === "PermissionError" || e instanceof Deno.errors.PermissionDenied) {
    return new CliError(
      `not permitted to read the memory of pid ${pid}: run as root, or as the process's owner ` +
        `with ptrace allowed (${err.message})`,
      ExitCode.NotPermitted,
    );
  }
  if (name === "BackendUnavailableError" || name === "ShimBuildError") {
    return new CliError(err.message, ExitCode.Environment);
  }
  if (e instanceof RangeError) return new CliError(err.message, ExitCode.Usage);
  return e;
}
