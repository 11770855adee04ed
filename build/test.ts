/**
 * The `test` task: prepare the machine (Debian packages, native shim, CRIU), run every test under
 * tests/, and close with a plain `u2cm tests: N passed, N failed` line.
 *
 * Usage: `deno task test [deno test filter args…]`
 *
 * @module
 */
import {
  buildShims,
  ensureDebianPackages,
  exists,
  provisionCriu,
  REPO_ROOT,
  step,
} from "./setup.ts";

step("Debian packages (build/debian-packages.txt)");
await ensureDebianPackages("test");
if (exists("build/shim.ts")) {
  step("native shim (x86_64 and aarch64)");
  await buildShims({ crossArm64: true });
}
if (exists("src/cli/doctor.ts")) {
  step("CRIU (u2cm doctor --fix)");
  await provisionCriu();
}

step("deno test");
const child = new Deno.Command(Deno.execPath(), {
  args: ["test", "-A", "--no-check=remote", ...Deno.args, "tests/"],
  cwd: REPO_ROOT,
  env: { NO_COLOR: "1" },
  stdin: "null",
  stdout: "piped",
  stderr: "inherit",
}).spawn();
let tail = "";
const decoder = new TextDecoder();
for await (const chunk of child.stdout) {
  await Deno.stdout.write(chunk);
  tail = (tail + decoder.decode(chunk, { stream: true })).slice(-4000);
}
const { code } = await child.status;
// deno test closes with "ok | 12 passed (3 steps) | 0 failed (4s)"; restate it plainly.
const summary = [...tail.matchAll(/(\d+) passed.*?\| (\d+) failed/g)].pop();
if (summary) console.log(`\nu2cm tests: ${summary[1]} passed, ${summary[2]} failed`);
else console.log(`\nu2cm tests: 0 passed, 1 failed (no test summary; deno test exited ${code})`);
Deno.exit(code);
