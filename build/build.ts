/**
 * The `build` task: single-file `u2cm` binaries for edge boxes.
 *
 * `deno task build [--target x86_64|aarch64] [--offline] [--prepare-only] [--no-shim-tests]
 * [--out-dir DIR]`
 *
 * 1. builds the native shim for each target (Debian gcc / gcc-aarch64-linux-gnu) and runs its C
 *    tests (the aarch64 ones under qemu-aarch64-static), staging it at dist/embed/<arch>/;
 * 2. writes dist/embed-list.json: every file each binary embeds (shim, models, onnxruntime wasm),
 *    checked to exist, with sizes and SHA-256;
 * 3. runs `deno compile --target <triple>` for each target into dist/u2cm-<arch>-linux, with denort
 *    from `DENORT_BIN` (a binary for that architecture), a pre-seeded
 *    `$DENO_DIR/dl/release/v<ver>/denort-<triple>.zip`, or the normal download (skipped with
 *    `--offline`). When none works it prints what was tried and how to fix it, and exits 5.
 *
 * `--prepare-only` stops after step 2. Exit codes: 0 built, 1 a step failed, 2 bad usage,
 * 5 no denort (or no compiler / qemu).
 *
 * @module
 */
import { ensureShim } from "../src/native/build.ts";
import { ensureTreeGuard } from "../src/native/tree_guard.ts";
import {
  type CompileTarget,
  denortMissingMessage,
  type DenortSource,
  denortUrl,
  denoVersion,
  isDenortDownloadFailure,
  localDenort,
  TARGETS,
} from "./denort.ts";
import {
  type EmbedEntry,
  embedList,
  ortExcludes,
  ortPackageDir,
  ROOT,
  stagedShim,
  stagedTreeGuard,
} from "./embed_list.ts";

/** Exit codes of the build task. */
export const BuildExit = { Ok: 0, Failure: 1, Usage: 2, Environment: 5 } as const;

/** Options of {@linkcode build}. */
export interface BuildOptions {
  /** Targets to build. @default both */
  targets?: readonly CompileTarget[];
  /** Never attempt the denort download. @default false */
  offline?: boolean;
  /** Stop after writing the embed list. @default false */
  prepareOnly?: boolean;
  /** Run the shim's C tests (aarch64 under qemu). @default true */
  shimTests?: boolean;
  /** Directory for the binaries. @default "<repo>/dist" */
  outDir?: string;
}

/** What {@linkcode build} did. */
export interface BuildResult {
  /** Exit code for the task. */
  code: number;
  /** The embed list written to dist/embed-list.json. */
  embeds: Record<string, EmbedEntry[]>;
  /** Binaries written. */
  built: string[];
  /** One message per target that could not be compiled. */
  problems: string[];
}

/** Run the build; prints progress on stderr and returns the result (never exits). */
export async function build(options: BuildOptions = {}): Promise<BuildResult> {
  const {
    targets = TARGETS,
    offline = false,
    prepareOnly = false,
    shimTests = true,
    outDir = `${ROOT}dist`,
  } = options;
  const result: BuildResult = { code: BuildExit.Ok, embeds: {}, built: [], problems: [] };
  for (const target of targets) {
    step(`native shim for ${target.arch}${shimTests ? " (build + C tests)" : ""}`);
    const code = shimTests ? await runShimScript(target) : 0;
    if (code !== 0) {
      result.problems.push(`native shim for ${target.arch}: build/shim.ts exited ${code}`);
      result.code = code === 5 ? BuildExit.Environment : BuildExit.Failure;
      return result;
    }
    stage(ensureShim(target.arch), stagedShim(target));
    stage(ensureTreeGuard(target.arch), stagedTreeGuard(target));
  }
  step("embed list (dist/embed-list.json)");
  const pkgDir = ortPackageDir();
  for (const target of targets) result.embeds[target.arch] = embedList(target, pkgDir);
  const excludes = ortExcludes(pkgDir);
  writeEmbedList(targets, result.embeds, excludes);
  for (const [arch, list] of Object.entries(result.embeds)) {
    const total = list.reduce((s, e) => s + e.bytes, 0);
    console.error(`${arch}: ${list.length} files, ${(total / 1048576).toFixed(1)} MiB`);
  }
  if (prepareOnly) return result;

  for (const target of targets) {
    step(`deno compile --target ${target.triple} → ${target.output}`);
    const local = localDenort(target);
    if (!local && offline) {
      result.problems.push(denortMissingMessage(target, "not attempted (--offline)"));
      continue;
    }
    const source: DenortSource = local ?? { kind: "download", url: denortUrl(target) };
    console.error(`denort: ${source.kind === "download" ? source.url : source.path}`);
    const output = `${outDir}/${basename(target.output)}`;
    const compiled = await compileTarget(
      target,
      output,
      source,
      result.embeds[target.arch],
      excludes,
    );
    if (compiled.ok) {
      result.built.push(output);
      continue;
    }
    if (source.kind === "download" && isDenortDownloadFailure(compiled.stderr)) {
      result.problems.push(denortMissingMessage(target, firstError(compiled.stderr)));
    } else {
      result.problems.push(`deno compile for ${target.triple} failed:\n${compiled.stderr.trim()}`);
      result.code = BuildExit.Failure;
    }
  }
  if (result.problems.length > 0 && result.code === BuildExit.Ok) {
    result.code = BuildExit.Environment;
  }
  return result;
}

/** The `deno compile` arguments for one target. */
export function compileArgs(
  target: CompileTarget,
  output: string,
  embeds: readonly EmbedEntry[],
  excludes: readonly string[],
): string[] {
  return [
    "compile",
    "-A",
    "--no-check=remote",
    "--exclude-unused-npm",
    "--target",
    target.triple,
    "--output",
    output,
    ...embeds.flatMap((e) => ["--include", e.path]),
    ...excludes.flatMap((p) => ["--exclude", p]),
    `${ROOT}main.ts`,
  ];
}

async function compileTarget(
  target: CompileTarget,
  output: string,
  source: DenortSource,
  embeds: readonly EmbedEntry[],
  excludes: readonly string[],
): Promise<{ ok: boolean; stderr: string }> {
  const env = Deno.env.toObject();
  delete env.DENORT_BIN;
  if (source.kind === "env") env.DENORT_BIN = source.path;
  env.NO_COLOR = "1";
  const out = await new Deno.Command(Deno.execPath(), {
    args: compileArgs(target, output, embeds, excludes),
    cwd: ROOT,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  if (out.success) {
    Deno.stderr.writeSync(out.stderr);
    const size = Deno.statSync(output).size;
    console.error(`wrote ${output} (${(size / 1048576).toFixed(1)} MiB)`);
  }
  return { ok: out.success, stderr };
}

async function runShimScript(target: CompileTarget): Promise<number> {
  const { code } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}build/shim.ts`, "--target", target.arch],
    cwd: ROOT,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  return code;
}

function stage(from: string, to: string): void {
  Deno.mkdirSync(to.slice(0, to.lastIndexOf("/")), { recursive: true });
  Deno.copyFileSync(from, to);
}

function writeEmbedList(
  targets: readonly CompileTarget[],
  embeds: Record<string, EmbedEntry[]>,
  excludes: readonly string[],
): void {
  const rel = (p: string) => p.startsWith(ROOT) ? p.slice(ROOT.length) : p;
  const doc = {
    deno: denoVersion(),
    targets: targets.map((t) => ({
      arch: t.arch,
      triple: t.triple,
      output: t.output,
      files: embeds[t.arch].map((e) => ({ ...e, path: rel(e.path) })),
    })),
    excluded_npm_files: excludes.length,
  };
  Deno.mkdirSync(`${ROOT}dist`, { recursive: true });
  Deno.writeTextFileSync(`${ROOT}dist/embed-list.json`, JSON.stringify(doc, null, 2) + "\n");
}

function firstError(stderr: string): string {
  const line = stderr.split("\n").find((l) => /error/i.test(l) && l.includes("dl.deno.land")) ??
    stderr.split("\n").find((l) => /error/i.test(l)) ?? "failed";
  return line.replace(/^\s*(error:|\d+:)\s*/, "").trim();
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

function step(text: string): void {
  console.error(`\n==> ${text}`);
}

function parseArgs(args: string[]): BuildOptions | string {
  const options: BuildOptions = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--offline") options.offline = true;
    else if (a === "--prepare-only") options.prepareOnly = true;
    else if (a === "--no-shim-tests") options.shimTests = false;
    else if (a === "--out-dir") {
      if (!args[i + 1]) return "--out-dir needs a directory";
      options.outDir = args[++i];
    } else if (a === "--target") {
      const t = TARGETS.find((t) => t.arch === args[i + 1]);
      if (!t) return `--target must be x86_64 or aarch64, got '${args[i + 1] ?? ""}'`;
      options.targets = [t];
      i++;
    } else return `unknown argument '${a}'`;
  }
  return options;
}

if (import.meta.main) {
  const options = parseArgs(Deno.args);
  if (typeof options === "string") {
    console.error(
      `build: ${options}\nusage: deno task build [--target x86_64|aarch64] ` +
        "[--offline] [--prepare-only] [--no-shim-tests] [--out-dir DIR]",
    );
    Deno.exit(BuildExit.Usage);
  }
  const result = await build(options);
  for (const problem of result.problems) console.error(`\nbuild: ${problem}`);
  if (result.built.length > 0) console.error(`\nbuilt: ${result.built.join(", ")}`);
  Deno.exit(result.code);
}
