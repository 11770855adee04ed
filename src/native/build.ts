/**
 * Building the native shim (`shim.c`) with the system C compiler into a cache directory, keyed by
 * the source's checksum, so it is built once per source version and architecture.
 *
 * @module
 */
import { crc32 } from "../util/crc32.ts";
import { exists } from "../util/fs.ts";

/** The architectures the shim is built for. */
export type ShimArch = "x86_64" | "aarch64";

/** Raised when the shim cannot be built (no compiler, compile error). */
export class ShimBuildError extends Error {
  /** @param message what failed and how to fix it */
  constructor(message: string) {
    super(message);
    this.name = "ShimBuildError";
  }
}

/** The C compiler used for each target architecture. */
export const COMPILERS: Record<ShimArch, string> = {
  x86_64: "cc",
  aarch64: "aarch64-linux-gnu-gcc",
};

/** Debian packages that provide each compiler. */
export const COMPILER_PACKAGES: Record<ShimArch, string> = {
  x86_64: "gcc",
  aarch64: "gcc-aarch64-linux-gnu",
};

const CFLAGS = ["-O2", "-fPIC", "-Wall", "-Wextra", "-fno-strict-aliasing"];

/** The architecture Deno runs on, as a shim architecture. */
export function hostArch(): ShimArch {
  return Deno.build.arch === "aarch64" ? "aarch64" : "x86_64";
}

/** The cache directory: `$U2CM_CACHE`, else `$XDG_CACHE_HOME/u2cm`, else `~/.cache/u2cm`. */
export function cacheDir(): string {
  const explicit = Deno.env.get("U2CM_CACHE");
  if (explicit) return explicit;
  const xdg = Deno.env.get("XDG_CACHE_HOME");
  if (xdg) return `${xdg}/u2cm`;
  return `${Deno.env.get("HOME") ?? "/tmp"}/.cache/u2cm`;
}

/**
 * The C sources built into the shim, in order (codec.c: the page-batch codec; page_check.c: the
 * local page server's book of processes and its page check; page_serve.c: the local page server's
 * session; uffdwp.c: the userfaultfd write-protect tracker).
 */
const SOURCES = ["shim.c", "codec.c", "page_check.c", "page_serve.c", "uffdwp.c"];

/** The shim's C source text (all its sources, concatenated). */
export function shimSource(): string {
  return SOURCES.map((name) => Deno.readTextFileSync(new URL(`./${name}`, import.meta.url)))
    .join("\n");
}

/** Where the shim for `arch` built from the current source lives in the cache. */
export function shimPath(arch: ShimArch = hostArch()): string {
  const sum = crc32(new TextEncoder().encode(shimSource() + CFLAGS.join(" ")));
  const tag = sum.toString(16).padStart(8, "0");
  return `${cacheDir()}/shim/libu2cm-${arch}-${tag}.so`;
}

/**
 * Return the path of a built shim for `arch`, compiling it first when the cache lacks it.
 * Throws {@linkcode ShimBuildError} with an actionable message when no compiler is present.
 */
export function ensureShim(arch: ShimArch = hostArch()): string {
  const out = shimPath(arch);
  if (exists(out)) return out;
  Deno.mkdirSync(out.slice(0, out.lastIndexOf("/")), { recursive: true });
  const tmp = `${out}.${Deno.pid}.tmp`;
  const src = new URL("./shim.c", import.meta.url);
  const sourcePaths = src.protocol === "file:"
    ? SOURCES.map((name) => new URL(`./${name}`, import.meta.url).pathname)
    : [writeTempSource(out)];
  const sourcePath = sourcePaths[0];
  try {
    compile(arch, ["-shared", "-o", tmp, ...sourcePaths]);
    Deno.renameSync(tmp, out);
  } finally {
    if (src.protocol !== "file:") Deno.removeSync(sourcePath);
  }
  return out;
}

/** Compile with the compiler for `arch`; throws {@linkcode ShimBuildError} on failure. */
export function compile(arch: ShimArch, args: string[]): void {
  const compiler = COMPILERS[arch];
  let result;
  try {
    result = new Deno.Command(compiler, { args: [...CFLAGS, ...args], stderr: "piped" })
      .outputSync();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new ShimBuildError(
        `no C compiler '${compiler}' to build the native shim for ${arch}: install it ` +
          `(apt-get install ${COMPILER_PACKAGES[arch]}) or point U2CM_SHIM at a built libu2cm .so`,
      );
    }
    throw e;
  }
  if (!result.success) {
    const text = new TextDecoder().decode(result.stderr).trim();
    throw new ShimBuildError(`building the native shim for ${arch} failed:\n${text}`);
  }
}

function writeTempSource(out: string): string {
  const path = `${out}.${Deno.pid}.c`;
  Deno.writeTextFileSync(path, shimSource());
  return path;
}
