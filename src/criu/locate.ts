/**
 * Which CRIU binary u2cm runs: `$U2CM_CRIU` when set, else the private prefix installed by
 * `u2cm doctor --fix`, else `criu` on PATH.
 *
 * @example
 * ```ts
 * const criu = requireCriu();
 * console.log(criu.path, criu.source);
 * ```
 *
 * @module
 */
import { cacheDir } from "../native/build.ts";
import { isFile } from "../util/fs.ts";

/** Where a CRIU binary came from. */
export type CriuSource = "env" | "private" | "system";

/** A CRIU binary u2cm can run. */
export interface CriuLocation {
  /** Absolute path of the executable. */
  path: string;
  /** How it was found. */
  source: CriuSource;
}

/** Name of the marker file a completed private install writes into its prefix. */
export const PREFIX_STAMP = "u2cm-criu.json";

/** Raised when no CRIU binary can be found. */
export class CriuNotFoundError extends Error {
  constructor() {
    super(
      "no usable CRIU found: run 'u2cm doctor --fix' (installs CRIU 4.1.1 into a private prefix), " +
        "install the 'criu' package, or point U2CM_CRIU at a criu binary",
    );
    this.name = "CriuNotFoundError";
  }
}

/** The private CRIU prefix: `$U2CM_CRIU_PREFIX`, else `<u2cm cache>/criu`. */
export function criuPrefix(): string {
  return Deno.env.get("U2CM_CRIU_PREFIX") || `${cacheDir()}/criu`;
}

/** The criu executable inside a private prefix. */
export function prefixCriuPath(prefix = criuPrefix()): string {
  return `${prefix}/usr/sbin/criu`;
}

/** Find the CRIU binary to use, or undefined when there is none. */
export function locateCriu(): CriuLocation | undefined {
  const explicit = Deno.env.get("U2CM_CRIU");
  if (explicit) return { path: explicit, source: "env" };
  const prefix = criuPrefix();
  if (isFile(`${prefix}/${PREFIX_STAMP}`) && isExecutable(prefixCriuPath(prefix))) {
    return { path: prefixCriuPath(prefix), source: "private" };
  }
  const system = systemCriu();
  return system ? { path: system, source: "system" } : undefined;
}

/** Find the CRIU binary to use; throws {@linkcode CriuNotFoundError} when there is none. */
export function requireCriu(): CriuLocation {
  const found = locateCriu();
  if (!found) throw new CriuNotFoundError();
  return found;
}

/** The `criu` on PATH (or in /usr/sbin, /sbin), if any. */
export function systemCriu(): string | undefined {
  const dirs = [...(Deno.env.get("PATH") ?? "").split(":"), "/usr/sbin", "/sbin"];
  for (const dir of dirs) {
    if (dir && isExecutable(`${dir}/criu`)) return `${dir}/criu`;
  }
  return undefined;
}

function isExecutable(path: string): boolean {
  try {
    const info = Deno.statSync(path);
    return info.isFile && ((info.mode ?? 0) & 0o111) !== 0;
  } catch {
    return false;
  }
}
