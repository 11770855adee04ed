/**
 * Where `deno compile` gets its `denort` runtime for a target: `DENORT_BIN` (when it is a binary
 * for that target's architecture), a zip pre-seeded in `$DENO_DIR/dl/release/v<ver>/`, or the
 * normal download. {@linkcode denortMissingMessage} is the one message shown when none works.
 *
 * @module
 */

/** A `deno compile` target this project builds. */
export interface CompileTarget {
  /** The shim architecture. */
  arch: "x86_64" | "aarch64";
  /** The Rust target triple `deno compile --target` takes. */
  triple: string;
  /** The output file under dist/. */
  output: string;
}

/** The two targets of `deno task build`. */
export const TARGETS: readonly CompileTarget[] = [
  { arch: "x86_64", triple: "x86_64-unknown-linux-gnu", output: "dist/u2cm-x86_64-linux" },
  { arch: "aarch64", triple: "aarch64-unknown-linux-gnu", output: "dist/u2cm-aarch64-linux" },
];

/** How `deno compile` will obtain denort for one target. */
export type DenortSource =
  | { kind: "env"; path: string }
  | { kind: "seeded"; path: string }
  | { kind: "download"; url: string };

/** The Deno version running this script (denort must match it). */
export function denoVersion(): string {
  return Deno.version.deno;
}

/** The download URL of denort for a target. */
export function denortUrl(target: CompileTarget, version = denoVersion()): string {
  return `https://dl.deno.land/release/v${version}/denort-${target.triple}.zip`;
}

/** `$DENO_DIR`, else Deno's default cache directory. */
export function denoDir(): string {
  const explicit = Deno.env.get("DENO_DIR");
  if (explicit) return explicit;
  const xdg = Deno.env.get("XDG_CACHE_HOME");
  return `${xdg ? xdg : `${Deno.env.get("HOME") ?? "/root"}/.cache`}/deno`;
}

/** Where a pre-seeded denort zip for `target` must be. */
export function seededDenortPath(target: CompileTarget, version = denoVersion()): string {
  return `${denoDir()}/dl/release/v${version}/denort-${target.triple}.zip`;
}

/** The ELF machine of a file: "x86_64", "aarch64", another name, or undefined if not ELF. */
export function elfArch(path: string): string | undefined {
  let head: Uint8Array;
  try {
    const file = Deno.openSync(path);
    try {
      head = new Uint8Array(20);
      const n = file.readSync(head) ?? 0;
      if (n < 20) return undefined;
    } finally {
      file.close();
    }
  } catch {
    return undefined;
  }
  if (head[0] !== 0x7f || head[1] !== 0x45 || head[2] !== 0x4c || head[3] !== 0x46) {
    return undefined;
  }
  const machine = head[18] | (head[19] << 8);
  if (machine === 0x3e) return "x86_64";
  if (machine === 0xb7) return "aarch64";
  return `machine 0x${machine.toString(16)}`;
}

/**
 * The local denort source for `target` (`DENORT_BIN` for this architecture, or a seeded zip), or
 * undefined when only the download remains.
 */
export function localDenort(target: CompileTarget): DenortSource | undefined {
  const bin = Deno.env.get("DENORT_BIN");
  if (bin && elfArch(bin) === target.arch) return { kind: "env", path: bin };
  const seeded = seededDenortPath(target);
  try {
    if (Deno.statSync(seeded).isFile) return { kind: "seeded", path: seeded };
  } catch { /* not seeded */ }
  return undefined;
}

/**
 * The message for a target whose denort is nowhere: what was tried, and the three ways to fix it.
 *
 * @param target the target
 * @param downloadProblem why the download did not work ("not attempted (--offline)" or the error)
 */
export function denortMissingMessage(target: CompileTarget, downloadProblem: string): string {
  const bin = Deno.env.get("DENORT_BIN");
  const binState = bin
    ? `DENORT_BIN=${bin} is ${describeArch(bin)}, not ${target.arch}`
    : "DENORT_BIN is not set";
  return [
    `cannot build ${target.output}: no denort runtime for ${target.triple} (deno ${denoVersion()}).`,
    `  - download ${denortUrl(target)}: ${downloadProblem}`,
    `  - ${binState}`,
    `  - no pre-seeded ${seededDenortPath(target)}`,
    `Fix one of: run 'deno task build' on a machine that reaches dl.deno.land; or set DENORT_BIN to ` +
    `a denort ${denoVersion()} binary for ${target.triple}; or copy denort-${target.triple}.zip ` +
    `(from the URL above) to ${seededDenortPath(target)}.`,
  ].join("\n");
}

function describeArch(path: string): string {
  const arch = elfArch(path);
  return arch === undefined ? "missing or not an ELF binary" : `a ${arch} binary`;
}

/** True when `deno compile`'s stderr says the denort download failed. */
export function isDenortDownloadFailure(stderr: string): boolean {
  return /Setting up base binary|denort-[\w-]+\.zip|dl\.deno\.land/.test(stderr);
}
