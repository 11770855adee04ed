/**
 * Build the native shim and run its C unit tests: `deno run -A build/shim.ts [--target aarch64]`.
 * The aarch64 build uses Debian's gcc-aarch64-linux-gnu; its tests run under qemu-aarch64-static.
 * Prints the built library's path.
 *
 * @module
 */
import { cacheDir, compile, ensureShim, hostArch, type ShimArch } from "../src/native/build.ts";

const targetIndex = Deno.args.indexOf("--target");
const target = (targetIndex >= 0 ? Deno.args[targetIndex + 1] : hostArch()) as ShimArch;
if (target !== "x86_64" && target !== "aarch64") {
  console.error(`build/shim.ts: unknown --target '${target}' (x86_64|aarch64)`);
  Deno.exit(2);
}

const lib = ensureShim(target);
console.log(`shim (${target}): ${lib}`);

const testExe = `${cacheDir()}/shim/shim_test-${target}`;
const src = (name: string) => new URL(`../src/native/${name}`, import.meta.url).pathname;
compile(target, [
  ...(target === hostArch() ? [] : ["-static"]),
  "-o",
  testExe,
  src("shim_test.c"),
  src("shim.c"),
]);
const runner = target === hostArch() ? [testExe] : [`qemu-${target}-static`, testExe];
let out;
try {
  out = new Deno.Command(runner[0], { args: runner.slice(1) }).outputSync();
} catch (e) {
  if (e instanceof Deno.errors.NotFound) {
    console.error(`build/shim.ts: ${runner[0]} not found: apt-get install qemu-user-static`);
    Deno.exit(5);
  }
  throw e;
}
const text = new TextDecoder();
Deno.stdout.writeSync(out.stdout);
Deno.stderr.writeSync(out.stderr);
if (!out.success) {
  console.error(`shim C tests (${target}) failed: ${text.decode(out.stderr).trim()}`);
  Deno.exit(1);
}
