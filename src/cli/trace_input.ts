/**
 * Reading a trace file named on the command line, with errors the user can act on.
 *
 * @module
 */
import { readTraceFile, type Trace, TraceFormatError } from "../trace/mod.ts";
import { CliError, ExitCode } from "./errors.ts";

/**
 * Read a trace file; a missing, unreadable, truncated or corrupt file becomes a {@linkcode CliError}
 * with exit code `BadInput` naming the file and the problem.
 *
 * @param file the path as the user typed it
 */
export async function readTraceArgument(file: string): Promise<Trace> {
  try {
    if (!(await Deno.stat(file)).isFile) {
      throw new CliError(`${file}: not a regular file`, ExitCode.BadInput);
    }
    return await readTraceFile(file);
  } catch (e) {
    if (e instanceof CliError) throw e;
    if (e instanceof TraceFormatError) throw new CliError(e.message, ExitCode.BadInput);
    if (e instanceof Deno.errors.NotFound) {
      throw new CliError(`${file}: no such trace file`, ExitCode.BadInput);
    }
    throw new CliError(`${file}: cannot read: ${(e as Error).message}`, ExitCode.BadInput);
  }
}
