import assert from "node:assert/strict";
import { outputAtExit } from "../../src/util/child_output.ts";
import { isAlive } from "../../src/tracker/proc.ts";

Deno.test("a child's output is collected up to its exit, not until a fork of it lets the pipes go", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "u2cm-child-output-" });
  let fork = 0;
  try {
    const child = new Deno.Command("sh", {
      args: ["-c", `sleep 60 & echo $! > ${dir}/fork.pid; echo out; echo err >&2; exit 3`],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const got = await outputAtExit(child);
    fork = Number(Deno.readTextFileSync(`${dir}/fork.pid`).trim());
    assert.deepEqual(got, { code: 3, stdout: "out\n", stderr: "err\n" });
    assert.ok(isAlive(fork), "collected while the fork still held the pipes");
  } finally {
    if (fork > 0) {
      try {
        Deno.kill(fork, "SIGKILL");
      } catch { /* gone */ }
    }
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("only the end of a long output is kept", async () => {
  const child = new Deno.Command("sh", {
    args: ["-c", "head -c 300000 /dev/zero | tr '\\0' a; echo END"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const { code, stdout } = await outputAtExit(child);
  assert.equal(code, 0);
  assert.ok(stdout.endsWith("aEND\n"), stdout.slice(-10));
  assert.ok(stdout.length <= 65_536 + 65_536, `kept ${stdout.length} bytes`);
});
