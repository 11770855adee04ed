/**
 * The native shim embedded in a compiled `u2cm` binary (`deno task build`). Deno.dlopen cannot load
 * a library from the binary's virtual file system, so on first use the embedded bytes are copied
 * into the cache directory under a name keyed by their content hash, once per shim version.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { cacheDir, hostArch, type ShimArch } from "./build.ts";

/** Where `deno task build` stages the shim for `arch`, relative to the repository root. */
export function embeddedShimRelativePath(arch: ShimArch): string {
  return `dist/embed/${arch}/libu2cm.so`;
}

/** Options of {@linkcode embeddedShim}. */
export interface EmbeddedShimOptions {
  /** Whether this process is a compiled binary. @default Deno.build.standalone */
  standalone?: boolean;
  /** The embedded library file. @default the staged shim for the host architecture */
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
  const {
    standalone = Deno.build.standalone === true,
    source = new URL(`../../${embeddedShimRelativePath(hostArch())}`, import.meta.url),
    cache = cacheDir(),
  } = options;
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
  const out = `${dir}/libu2cm-${hostArch()}-embedded-${digest}.so`;
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
