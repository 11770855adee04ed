/**
 * Reading CRIU's logs: the version a log names, whether a growing log has reached a line, and
 * the error lines at its end (what a {@linkcode CriuError} says).
 *
 * @example
 * ```ts
 * await criuVersionOfLog(`${dir}/dump.log`); // "4.1.1"
 * await logTail(`${dir}/restore.log`); // "Error (criu/cr-restore.c:…): …"
 * ```
 *
 * @module
 */
import { criuVersionInLog } from "./page_server.ts";

/**
 * The CRIU version a log names on its first lines (undefined when the log is unreadable or names
 * none): the page server's wire format follows it.
 *
 * @example
 * ```ts
 * await criuVersionOfLog(`${dir}/dump.log`); // "4.1.1"
 * ```
 */
export async function criuVersionOfLog(file: string): Promise<string | undefined> {
  try {
    using f = await Deno.open(file, { read: true });
    const buf = new Uint8Array(4096);
    const n = await f.read(buf);
    return criuVersionInLog(new TextDecoder().decode(buf.subarray(0, n ?? 0)));
  } catch {
    return undefined;
  }
}

/** Whether the text appended to `file` since `seen` (updated) contains `needle`. */
export async function logGrewWith(
  file: string,
  seen: { offset: number; tail: string },
  needle: string,
): Promise<boolean> {
  let f: Deno.FsFile;
  try {
    f = await Deno.open(file, { read: true });
  } catch {
    return false; // not yet created
  }
  try {
    await f.seek(seen.offset, Deno.SeekMode.Start);
    const buf = new Uint8Array(1 << 16);
    for (;;) {
      const n = await f.read(buf);
      if (n === null || n === 0) return false;
      seen.offset += n;
      // Keep a tail so that a needle split between two reads is still found.
      const text = seen.tail + new TextDecoder().decode(buf.subarray(0, n));
      if (text.includes(needle)) return true;
      seen.tail = text.slice(-needle.length);
    }
  } finally {
    f.close();
  }
}

/** The error lines at the end of a CRIU log (or `fallback` when there is no log). */
export async function logTail(logFile: string, fallback = ""): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(logFile);
  } catch {
    return fallback || "(no log)";
  }
  const lines = text.split("\n").filter((l) => /Error|error|Warn/.test(l));
  const tail = (lines.length ? lines : text.split("\n").filter((l) => l.trim())).slice(-4);
  return tail.map((l) => l.replace(/^\([\d.]+\)\s*/, "").trim()).join(" | ") || fallback;
}
