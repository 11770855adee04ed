/**
 * The CRIU boundary's process handling (src/criu/run.ts): a CRIU run ends when CRIU exits, even
 * when processes it forked (a restore's tasks, the orphans of a killed CRIU) still hold its output
 * pipes. The "CRIU" here is a real program standing in for a failing CRIU whose fork lingers.
 */
import assert from "node:assert/strict";
import { CriuError, criuRestore } from "../../src/criu/run.ts";
import { isAlive } from "../../src/tracker/proc.ts";

Deno.test("a CRIU run that fails while a fork of it holds its pipes open ends at CRIU's exit", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "u2cm-criu-run-" });
  const criu = `${dir}/criu`;
  // The fork keeps stdout and stderr open for 60 s after "CRIU" exited with an error.
  Deno.writeTextFileSync(
    criu,
    `#!/bin/sh\nsleep 60 &\necho $! > ${dir}/fork.pid\n` +
      `echo "Error (criu/cr-restore.c:1): Restoring FAILED." >&2\nexit 1\n`,
  );
  Deno.chmodSync(criu, 0o755);
  let fork = 0;
  try {
    const err = await criuRestore({ dir, criu }).then(() => undefined, (e) => e);
    fork = Number(Deno.readTextFileSync(`${dir}/fork.pid`).trim());
    assert.ok(err instanceof CriuError, `a CriuError: ${err}`);
    assert.equal(err.exitCode, 1);
    assert.match(err.message, /Restoring FAILED/, "the error carries CRIU's stderr");
    assert.ok(isAlive(fork), "the run ended while the fork still held the pipes");
  } finally {
    if (fork > 0) {
      try {
        Deno.kill(fork, "SIGKILL");
      } catch { /* gone */ }
    }
    Deno.removeSync(dir, { recursive: true });
  }
});
