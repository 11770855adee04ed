/**
 * Structured logging for the agent and the peer client: one JSON object per line on stderr.
 *
 * @example
 * ```ts
 * const log = createLogger("info");
 * log({ level: "info", msg: "listening", port: 7070 });
 * ```
 *
 * @module
 */

/** Log levels, most severe first. */
export const LOG_LEVELS = ["error", "warn", "info", "debug"] as const;

/** A log level name. */
export type LogLevel = typeof LOG_LEVELS[number];

/** A log sink: receives one record (with `level` and `msg`) per event. */
export type LogSink = (rec: Record<string, unknown>) => void;

/** A sink that drops everything. */
export const silentLog: LogSink = () => {};

/**
 * A sink writing records at or above `level` as JSON lines to stderr, stamped with `ts`.
 *
 * @param level the least severe level written @default "info"
 */
export function createLogger(level: LogLevel = "info"): LogSink {
  const limit = LOG_LEVELS.indexOf(level);
  const enc = new TextEncoder();
  return (rec) => {
    const recLevel = LOG_LEVELS.indexOf((rec.level as LogLevel) ?? "info");
    if ((recLevel < 0 ? 2 : recLevel) > limit) return;
    const line = JSON.stringify({ ts: new Date().toISOString(), level: "info", ...rec });
    try {
      Deno.stderr.writeSync(enc.encode(line + "\n"));
    } catch { /* stderr closed: nothing to do */ }
  };
}
