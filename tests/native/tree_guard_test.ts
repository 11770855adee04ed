/**
 * The tree guard with real processes: what a guarded command leaves behind when it succeeds, fails,
 * is killed, when the guard is told to stop, and when the guard's parent dies.
 */
import assert from "node:assert/strict";
import { ensureTreeGuard, guardedCommand, TreeGuardExit } from "../../src/native/tree_guard.ts";
import { childrenOf, isDefunct } from "../../src/tracker/proc.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A shell script that starts two long sleeps (one in its own session) and records their pids. */
function orphans(file: string, exit: string): string {
  return `sleep 300 & echo $! > ${file}; (setsid sleep 301 & echo $! >> ${file}); ${exit}`;
}

function pidsIn(file: string): number[] {
  return Deno.readTextFileSync(file).trim().split("\n").map(Number);
}

async function gone(pids: number[]): Promise<boolean> {
  for (let i = 0; i < 200; i++) {
    if (pids.every(isDefunct)) return true;
    await sleep(10);
  }
  return false;
}

async function run(script: string): Promise<number> {
  const [cmd, args] = guardedCommand("sh", ["-c", script]);
  const child = new Deno.Command(cmd, { args, stdin: "null", stdout: "null", stderr: "null" });
  const { code } = await child.output();
  return code;
}

function tempFile(): string {
  return Deno.makeTempFileSync({ prefix: "u2cm-guard-" });
}

Deno.test("a guarded command that fails takes every process it made with it", async () => {
  const file = tempFile();
  try {
    assert.equal(await run(orphans(file, "exit 3")), 3, "the command's status is the guard's");
    assert.ok(await gone(pidsIn(file)), "no orphan of a failed command survives");
  } finally {
    Deno.removeSync(file);
  }
});

Deno.test("a guarded command that succeeds leaves what it made to the caller", async () => {
  const file = tempFile();
  try {
    assert.equal(await run(orphans(file, "exit 0")), 0);
    const pids = pidsIn(file);
    assert.ok(pids.every((p) => !isDefunct(p)), "the made processes outlive the guard");
    for (const p of pids) Deno.kill(p, "SIGKILL");
    assert.ok(await gone(pids));
  } finally {
    Deno.removeSync(file);
  }
});

Deno.test("a guarded command killed mid-way, or a guard told to stop, ends everything", async () => {
  for (const how of ["command killed", "guard stopped"] as const) {
    const file = tempFile();
    try {
      const [cmd, args] = guardedCommand("sh", ["-c", orphans(file, "sleep 302")]);
      const guard = new Deno.Command(cmd, { args, stdin: "null", stdout: "null" }).spawn();
      for (let i = 0; i < 200 && lines(file) < 2; i++) await sleep(10);
      const pids = pidsIn(file);
      assert.equal(pids.length, 2, "the command started its processes");
      if (how === "guard stopped") guard.kill("SIGTERM");
      else Deno.kill(shellOf(guard.pid), "SIGKILL");
      const { code } = await guard.status;
      assert.equal(code, how === "guard stopped" ? 128 + 15 : 128 + 9, how);
      assert.ok(await gone(pids), `${how}: no process of the command survives`);
    } finally {
      Deno.removeSync(file);
    }
  }
});

Deno.test("when the guard's parent dies, the guard ends the command and what it made", async () => {
  const file = tempFile();
  try {
    // A parent shell runs the guard (tied to that shell, not to this test) and then waits.
    const guard = ensureTreeGuard();
    const script = `'${guard}' $$ sh -c '${orphans(file, "sleep 303")}'; :`;
    const parent = new Deno.Command("sh", { args: ["-c", script], stdin: "null", stdout: "null" })
      .spawn();
    for (let i = 0; i < 200 && lines(file) < 2; i++) await sleep(10);
    const pids = pidsIn(file);
    assert.equal(pids.length, 2);
    parent.kill("SIGKILL");
    await parent.status;
    assert.ok(await gone(pids), "the parent's death ends every process of the command");
  } finally {
    Deno.removeSync(file);
  }
});

Deno.test("the guard refuses bad usage and a parent that is not its own", async () => {
  const guard = ensureTreeGuard();
  const usage = await new Deno.Command(guard, { args: ["x", "true"], stderr: "piped" }).output();
  assert.equal(usage.code, TreeGuardExit.Usage);
  assert.match(new TextDecoder().decode(usage.stderr), /bad parent pid/);
  const other = await new Deno.Command(guard, { args: ["2", "true"] }).output();
  assert.equal(other.code, TreeGuardExit.ParentGone, "never starts for a parent it cannot follow");
  const missing = await new Deno.Command(guard, {
    args: [String(Deno.pid), "/nonexistent/u2cm-no-such-program"],
    stderr: "piped",
  }).output();
  assert.equal(missing.code, TreeGuardExit.Exec);
  assert.match(new TextDecoder().decode(missing.stderr), /cannot run/);
});

function lines(file: string): number {
  const text = Deno.readTextFileSync(file).trim();
  return text ? text.split("\n").length : 0;
}

/** The guarded shell: the guard's only child. */
function shellOf(guardPid: number): number {
  const [shell] = childrenOf(guardPid);
  assert.ok(shell, "the guard runs its command as its child");
  return shell;
}
