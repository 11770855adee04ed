/**
 * Asking a CRIU binary what it is and whether it works on this kernel (`criu --version`,
 * `criu check`, `criu check --feature NAME`).
 *
 * @module
 */
import { requireCriu } from "./locate.ts";

/** What a CRIU binary says about itself and this kernel. */
export interface CriuProbe {
  /** The binary probed. */
  path: string;
  /** Version string, e.g. `4.1.1`; undefined when the binary does not run. */
  version?: string;
  /** Whether `criu check` passed. */
  checkOk: boolean;
  /** The last lines of `criu check` output (or why it could not run). */
  checkDetail: string;
}

/** Run a CRIU binary with `args`; never throws. */
export async function runCriuQuiet(
  path: string,
  args: string[],
): Promise<{ code: number; output: string }> {
  try {
    const out = await new Deno.Command(path, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    return { code: out.code, output: (dec.decode(out.stdout) + dec.decode(out.stderr)).trim() };
  } catch (e) {
    return { code: 127, output: (e as Error).message };
  }
}

/** Probe `path`: version and `criu check` (the check needs root). */
export async function probeCriu(path: string): Promise<CriuProbe> {
  const v = await runCriuQuiet(path, ["--version"]);
  const version = v.code === 0 ? /Version:\s*(\S+)/.exec(v.output)?.[1] : undefined;
  if (version === undefined) {
    return { path, checkOk: false, checkDetail: `does not run: ${lastLines(v.output)}` };
  }
  const check = await runCriuQuiet(path, ["check"]);
  return {
    path,
    version,
    checkOk: check.code === 0,
    checkDetail: lastLines(check.output),
  };
}

/** Whether `criu check --feature NAME` passes (e.g. `uffd-noncoop`, `mem_dirty_track`). */
export async function criuFeature(path: string, feature: string): Promise<boolean> {
  return (await runCriuQuiet(path, ["check", "--feature", feature])).code === 0;
}

function lastLines(text: string, n = 3): string {
  return text.split("\n").filter((l) => l.trim() !== "").slice(-n).join(" | ") || "(no output)";
}

const versions = new Map<string, Promise<string | undefined>>();

/**
 * The version of the CRIU binary u2cm runs (`criu --version`, asked once per binary), or
 * undefined when it cannot be told.
 *
 * @example
 * ```ts
 * await criuVersionOf(); // "4.1.1"
 * ```
 */
export function criuVersionOf(path?: string): Promise<string | undefined> {
  let bin = path;
  if (!bin) {
    try {
      bin = requireCriu().path;
    } catch {
      return Promise.resolve(undefined);
    }
  }
  let v = versions.get(bin);
  if (!v) {
    v = runCriuQuiet(bin, ["--version"]).then((r) =>
      r.code === 0 ? /Version:\s*(\S+)/.exec(r.output)?.[1] : undefined
    );
    versions.set(bin, v);
  }
  return v;
}
