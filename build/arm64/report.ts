/**
 * Reading `deno test` output (with NO_COLOR) into per-file counts for the arm64 lane's summary.
 *
 * @module
 */

/** Counts of one test file. */
export interface FileCounts {
  /** The file, relative to the repository. */
  file: string;
  /** Tests that passed. */
  passed: number;
  /** Tests that failed. */
  failed: number;
  /** Tests registered as ignored (the lane lacks a capability they need). */
  ignored: number;
}

/** A whole `deno test` run. */
export interface TestRun {
  /** Per file, in the order they ran. */
  files: FileCounts[];
  /** Totals. */
  passed: number;
  failed: number;
  ignored: number;
  /** `file › test` of each failed test. */
  failures: string[];
}

/**
 * Parse `deno test` output: "running N tests from ./FILE" headers and top-level
 * "NAME ... ok|FAILED|ignored (TIME)" lines.
 *
 * @example
 * ```ts
 * import { parseDenoTest } from "./report.ts";
 * parseDenoTest("running 1 test from ./tests/a_test.ts\nit works ... ok (2ms)\n").passed; // 1
 * ```
 */
export function parseDenoTest(text: string): TestRun {
  const files: FileCounts[] = [];
  const failures: string[] = [];
  let current: FileCounts | undefined;
  for (const line of text.split("\n")) {
    const header = /^running \d+ tests? from \.\/(\S+)/.exec(line);
    if (header) {
      current = { file: header[1], passed: 0, failed: 0, ignored: 0 };
      files.push(current);
      continue;
    }
    const result = /^(\S.*) \.\.\. (ok|FAILED|ignored) \(/.exec(line);
    if (!result || !current) continue;
    if (result[2] === "ok") current.passed++;
    else if (result[2] === "ignored") current.ignored++;
    else {
      current.failed++;
      failures.push(`${current.file} › ${result[1]}`);
    }
  }
  const sum = (k: "passed" | "failed" | "ignored") => files.reduce((a, f) => a + f[k], 0);
  return { files, passed: sum("passed"), failed: sum("failed"), ignored: sum("ignored"), failures };
}
