/**
 * The native files embedded in a compiled `u2cm` binary (`deno task build`): the shim and the tree
 * guard. Deno.dlopen cannot load a library, nor the kernel run a program, from the binary's virtual
 * file system, so on first use the embedded bytes are copied into the cache directory under a name
 * keyed by their content hash, once per version.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { cacheDir, hostArch, type ShimArch } from "./build.ts";

/** Where `deno task build` stages the shim for `arch`, relative to the repository root. */
export function embeddedShimRelativePath(arch: ShimArch): string {
  return `dist/embed/${arch}/libu2cm.so`;
}

/** Where `deno task build` stages the tree guard (tree_guard.c) for `arch`, relative to the root. */
export function embeddedTreeGuardRelativePath(arch: ShimArch): string {
  return `dist/embed/${arch}/u2cm-tree-guard`;
}

/** Options of {@linkcode embeddedShim} and {@linkcode embeddedTreeGuard}. */
export interface EmbeddedShimOptions {
  /** Whether this process is a compiled binary. @default Deno.build.standalone */
  standalone?: boolean;
  /** The embedded file. @default the staged file for the host architecture */
  source?: string | URL;
  /** The cache directory to extract into. @default cacheDir() */
  cache?: string;
}

/**
 * In a compiled binary, the path of the embedded shim extracted into the cache (extracting it
 * when the cache lacks it); `undefined` when running from source or when nothing is embedded.
 *
 * @example
 * ```ts
 * import { embeddedShim } from "./embedded.ts";
 * const path = embeddedShim(); // undefined under `deno run`
 * ```
 */
export function embeddedShim(options: EmbeddedShimOptions = {}): string | undefined {
  const source = options.source ??
    new URL(`../../${embeddedShimRelativePath(hostArch())}`, import.meta.url);
  return extract({ ...options, source }, (digest) => `libu2cm-${hostArch()}-embedded-${digest}.so`);
}

/**
 * In a compiled binary, the path of the embedded tree guard extracted into the cache (see
 * {@linkcode embeddedShim}); `undefined` under `deno run` or when nothing is embedded.
 *
 * @example
 * ```ts
 * import { embeddedTreeGuard } from "./embedded.ts";
 * const path = embeddedTreeGuard(); // undefined under `deno run`
 * ```
 */
export function embeddedTreeGuard(options: EmbeddedShimOptions = {}): string | undefined {
  const source = options.source ??
    new URL(`../../${embeddedTreeGuardRelativePath(hostArch())}`, import.meta.url);
  return extract({ ...options, source }, (digest) => `u2cm-tree-guard-${hostArch()}-${digest}`);
}

function extract(
  options: EmbeddedShimOptions & { source: string | URL },
  name: (digest: string) => string,
): string | undefined {
  const { standalone = Deno.build.standalone === true, source, cache = cacheDir() } = options;
  if (!standalone) return undefined;
  let bytes: Uint8Array;
  try {
    bytes = Deno.readFileSync(source);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  const digest = createHash("sha256").update(bytes).digest("hex").slice(0, 16);
  const dir = `${cache}/shim`;
  const out = `${dir}/${name(digest)}`;
  if (sizeOf(out) === bytes.length) return out;
  Deno.mkdirSync(dir, { recursive: true });
  const tmp = `${out}.${Deno.pid}.tmp`;
  Deno.writeFileSync(tmp, bytes, { mode: 0o755 });
  Deno.renameSync(tmp, out);
  return out;
}

function sizeOf(path: string): number | undefined {
  try {
    return Deno.statSync(path).size;
  } catch {
    return undefined;
  }
}
