/**
 * The `bench` task: runs every benchmark script in build/bench/ (each prints one JSON object),
 * collects the results and writes them to bench-results.json (or the path given with `-o`).
 *
 * Usage: `deno task bench [only-these-names…] [-o FILE]`
 *
 * @module
 */
import { REPO_ROOT, step } from "./setup.ts";

const args = [...Deno.args];
const outAt = args.indexOf("-o");
const outFile = outAt >= 0 ? args.splice(outAt, 2)[1] : `${REPO_ROOT}bench-results.json`;
const only = new Set(args);

const scripts = [...Deno.readDirSync(`${REPO_ROOT}build/bench`)]
  .filter((e) => e.isFile && e.name.endsWith(".ts"))
  .map((e) => e.name.replace(/\.ts$/, ""))
  .filter((name) => only.size === 0 || only.has(name))
  .sort();

const results: Record<string, unknown> = {
  machine: {
    kernel: Deno.osRelease(),
    arch: Deno.build.arch,
    cpus: navigator.hardwareConcurrency,
    deno: Deno.version.deno,
    at: new Date().toISOString(),
  },
};
let failed = 0;
for (const name of scripts) {
  step(`bench ${name}`);
  const { code, stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `build/bench/${name}.ts`],
    cwd: REPO_ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const text = new TextDecoder().decode(stdout).trim();
  try {
    if (code !== 0) throw new Error(`exit ${code}`);
    results[name] = JSON.parse(text.slice(text.indexOf("{")));
    console.log(JSON.stringify(results[name], null, 2));
  } catch (e) {
    failed++;
    results[name] = { error: `${(e as Error).message}`, output: text.slice(-2000) };
    console.error(`bench ${name} failed: ${(e as Error).message}`);
  }
}
await Deno.writeTextFile(outFile, JSON.stringify(results, null, 2) + "\n");
console.error(`\nwrote ${outFile} (${scripts.length - failed}/${scripts.length} benchmarks ok)`);
Deno.exit(failed === 0 ? 0 : 1);
