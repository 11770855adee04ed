/**
 * Structured logs: one JSON object per line on stderr (`ts`, `level`, `msg`, then fields). Under
 * systemd (stderr is the journal stream named by `$JOURNAL_STREAM`) each line starts with the
 * syslog priority prefix (`<3>` error … `<7>` debug), so `journalctl -p warning` filters by level.
 * The process-wide level comes from `--log-level`, else `$U2CM_LOG_LEVEL`, else `info`.
 *
 * @example
 * ```ts
 * import { logger } from "./log.ts";
 * const log = logger().child({ migration: "m-1" });
 * log.info("round sent", { round: 3, pages: 1200 });
 * ```
 *
 * @module
 */

/** Log levels, most severe first. */
export const LOG_LEVELS = ["error", "warn", "info", "debug"] as const;

/** A log level name. */
export type LogLevel = typeof LOG_LEVELS[number];

/** Syslog priorities of the levels (journald reads them from a `<N>` line prefix). */
export const SYSLOG_PRIORITY: Record<LogLevel, number> = { error: 3, warn: 4, info: 6, debug: 7 };

/** Extra fields of a record. Errors are written as `{name, message}`. */
export type LogFields = Record<string, unknown>;

/** A structured logger. */
export interface Logger {
  /** The least severe level this logger writes. */
  readonly level: LogLevel;
  /** Whether a record at `level` would be written. */
  enabled(level: LogLevel): boolean;
  /** Write a record at `level`. */
  log(level: LogLevel, msg: string, fields?: LogFields): void;
  /** Write an error record. */
  error(msg: string, fields?: LogFields): void;
  /** Write a warning record. */
  warn(msg: string, fields?: LogFields): void;
  /** Write an info record. */
  info(msg: string, fields?: LogFields): void;
  /** Write a debug record. */
  debug(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every record. */
  child(fields: LogFields): Logger;
}

/** Options of {@linkcode createLogger}. */
export interface LoggerOptions {
  /** The least severe level written. @default the process-wide level */
  level?: LogLevel;
  /** Fields added to every record. @default {} */
  fields?: LogFields;
  /** Receives each finished line (without newline). @default write to stderr */
  write?: (line: string) => void;
  /** Prefix lines with `<N>` syslog priorities. @default whether stderr is the journal stream */
  journal?: boolean;
  /** The clock. @default () => new Date() */
  now?: () => Date;
}

/** Whether `value` is a log level name. */
export function isLogLevel(value: string): value is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(value);
}

let processLevel: LogLevel | undefined;

/** Set the process-wide level (the `--log-level` option does this); `undefined` unsets it. */
export function setLogLevel(level: LogLevel | undefined): void {
  processLevel = level;
}

/** Whether the level was chosen explicitly: by `--log-level` or by `$U2CM_LOG_LEVEL`. */
export function isLogLevelExplicit(): boolean {
  const env = Deno.env.get("U2CM_LOG_LEVEL");
  return processLevel !== undefined || (env !== undefined && isLogLevel(env));
}

/** The process-wide level: set by `--log-level`, else `$U2CM_LOG_LEVEL`, else `info`. */
export function getLogLevel(): LogLevel {
  if (processLevel) return processLevel;
  const env = Deno.env.get("U2CM_LOG_LEVEL");
  return env && isLogLevel(env) ? env : "info";
}

/** Create a logger. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const {
    level = getLogLevel(),
    fields = {},
    write = writeStderr,
    journal = stderrIsJournal(),
    now = () => new Date(),
  } = options;
  const limit = LOG_LEVELS.indexOf(level);
  const enabled = (l: LogLevel) => LOG_LEVELS.indexOf(l) <= limit;
  const log = (l: LogLevel, msg: string, extra: LogFields = {}) => {
    if (!enabled(l)) return;
    const record = { ts: now().toISOString(), level: l, msg, ...plain(fields), ...plain(extra) };
    const line = JSON.stringify(record);
    write(journal ? `<${SYSLOG_PRIORITY[l]}>${line}` : line);
  };
  return {
    level,
    enabled,
    log,
    error: (msg, f) => log("error", msg, f),
    warn: (msg, f) => log("warn", msg, f),
    info: (msg, f) => log("info", msg, f),
    debug: (msg, f) => log("debug", msg, f),
    child: (more) => createLogger({ level, fields: { ...fields, ...more }, write, journal, now }),
  };
}

/** A logger at the process-wide level, writing to stderr. */
export function logger(fields: LogFields = {}): Logger {
  return createLogger({ fields });
}

/**
 * Whether stderr is connected to the journal: `$JOURNAL_STREAM` is `DEV:INODE` of that stream.
 */
export function stderrIsJournal(): boolean {
  const stream = Deno.env.get("JOURNAL_STREAM");
  if (!stream) return false;
  try {
    const info = Deno.statSync("/proc/self/fd/2");
    return stream === `${info.dev}:${info.ino}`;
  } catch {
    return false;
  }
}

function plain(fields: LogFields): LogFields {
  const out: LogFields = {};
  for (const [key, value] of Object.entries(fields)) {
    if (value instanceof Error) out[key] = { name: value.name, message: value.message };
    else if (typeof value === "bigint") out[key] = value.toString();
    else out[key] = value;
  }
  return out;
}

const encoder = new TextEncoder();

function writeStderr(line: string): void {
  try {
    Deno.stderr.writeSync(encoder.encode(line + "\n"));
  } catch { /* stderr closed: nothing to do */ }
}
