/**
 * Test helpers for CRIU tests: require a working CRIU, and start the memcheck workload in its
 * own pid namespace.
 *
 * @module
 */
import assert from "node:assert/strict";
import { locateCriu } from "../../src/criu/locate.ts";
import { type IsolatedWorkload, launchIsolated } from "../../src/engine/launch.ts";
import { requireRoot } from "../support/env.ts";
import { buildWorkload } from "../support/workloads.ts";

/** Throw unless running as root with a CRIU binary; returns its path. */
export function requireCriuBinary(): string {
  requireRoot("CRIU dump/restore need root");
  const found = locateCriu();
  if (!found) {
    throw new Error("this test needs CRIU: run 'deno run -A main.ts doctor --fix' first");
  }
  return found.path;
}

/** A memcheck (or other self-checking) workload with its output file. */
export interface Memcheck extends IsolatedWorkload {
  /** Its stdout file. */
  out: string;
  /** The directory holding the output. */
  dir: string;
  /** Last line matching `re` in its output, or undefined. */
  last(re: RegExp): string | undefined;
  /** Wait (bounded) until a line matching `re` appears after `from` lines; returns it. */
  waitFor(re: RegExp, timeoutMs?: number, from?: number): Promise<string>;
  /** Number of lines written so far. */
  lines(): number;
}

/** Start memcheck with `args` in its own pid namespace; waits for its "ready" line. */
export function startMemcheck(args: string[] = [], prefix?: string[]): Promise<Memcheck> {
  return startWorkload("memcheck", args, prefix);
}

/**
 * Start the workload `build/workloads/<name>.c` (or, with `shell`, `/bin/sh -c SCRIPT` where
 * `$W` names the built workload) in its own pid namespace; waits for its "ready" line.
 */
export async function startWorkload(
  name: string,
  args: string[] = [],
  prefix?: string[],
  shell?: string,
): Promise<Memcheck> {
  const exe = buildWorkload(name);
  const dir = Deno.makeTempDirSync({ prefix: `u2cm-${name}-` });
  const out = `${dir}/stdout`;
  const w = await launchIsolated({
    cmd: shell === undefined ? exe : "/bin/sh",
    args: shell === undefined ? args : ["-c", shell.replaceAll("$W", exe)],
    stdout: out,
    stderr: `${dir}/stderr`,
    prefix,
  });
  const read = () => {
    try {
      return Deno.readTextFileSync(out).split("\n").filter((l) => l !== "");
    } catch {
      return [];
    }
  };
  const m: Memcheck = {
    ...w,
    out,
    dir,
    lines: () => read().length,
    last: (re) => read().filter((l) => re.test(l)).pop(),
    waitFor: async (re, timeoutMs = 10_000, from = 0) => {
      const until = performance.now() + timeoutMs;
      for (let i = 0; i < 10_000 && performance.now() < until; i++) {
        const hit = read().slice(from).find((l) => re.test(l));
        if (hit) return hit;
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error(`memcheck never printed ${re} (last: ${read().slice(-3).join(" / ")})`);
    },
  };
  await m.waitFor(/^ready/);
  return m;
}

/** The tick counter of a "tick N pid P gen G ok" line. */
export function tickOf(line: string | undefined): number {
  const m = /^tick (\d+)/.exec(line ?? "");
  return m ? Number(m[1]) : -1;
}

/**
 * The copy `pid` of memcheck `w` is healthy: asked (SIGUSR1), it checks its whole memory and says
 * "verify ok", its counter goes on, and it never reported corruption.
 *
 * @example
 * ```ts
 * await assertMemcheckHealthy(w, restoredPid);
 * ```
 */
export async function assertMemcheckHealthy(
  w: Memcheck,
  pid: number,
  verifyTimeoutMs = 10_000,
): Promise<void> {
  const before = tickOf(w.last(/^tick /));
  const mark = w.lines();
  Deno.kill(pid, "SIGUSR1");
  await w.waitFor(/^verify ok/, verifyTimeoutMs, mark);
  await w.waitFor(/^tick /, 5000, w.lines());
  assert.ok(tickOf(w.last(/^tick /)) > before, "the counter did not continue");
  assert.equal(w.last(/CORRUPT|FAIL/), undefined, "memcheck reported corruption");
}
