/**
 * Translation of peer-layer errors into {@linkcode CliError}s with documented exit codes.
 *
 * @module
 */
import { PeerError } from "../peer/errors.ts";
import { CliError, ExitCode } from "./errors.ts";

/** The default state directory: `$U2CM_STATE_DIR`, else `/var/lib/u2cm`. */
export function defaultStateDir(): string {
  return Deno.env.get("U2CM_STATE_DIR") || "/var/lib/u2cm";
}

/** Map an error from src/peer to a CliError; other errors pass through unchanged. */
export function peerCliError(e: unknown): unknown {
  if (!(e instanceof PeerError)) return e;
  switch (e.code) {
    case "identity":
      return new CliError(e.message, ExitCode.Environment);
    case "rejected":
      return new CliError(e.message, ExitCode.BadInput);
    case "unknown-peer":
      return new CliError(e.message, ExitCode.BadInput);
    case "aborted":
      return new CliError(e.message, ExitCode.MigrationFailed);
    default:
      return new CliError(e.message, ExitCode.Peer);
  }
}
