/**
 * The arm64 Deno the arm64 lane runs under qemu-user: npm's `@deno/linux-arm64-glibc` at the
 * version recorded in `build/arm64/deno-arm64.json`. It is fetched once with `npm pack` into
 * `<u2cm cache>/deno-arm64/<version>/`, and on every use both the tarball and the extracted
 * binary are checked against the recorded SHA-256 digests.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { cacheDir } from "../../src/native/build.ts";

/** The pinned package, as recorded in deno-arm64.json. */
export interface Arm64DenoPin {
  /** npm package name. */
  package: string;
  /** Package version (the nearest to the project's pinned Deno that npm serves). */
  version: string;
  /** File name `npm pack` writes. */
  tarball: string;
  /** SHA-256 of the tarball, hex. */
  tarball_sha256: string;
  /** npm's own integrity string of the tarball (informational; the SHA-256 is what is checked). */
  npm_integrity: string;
  /** SHA-256 of the `deno` binary inside, hex. */
  deno_sha256: string;
}

/** Options of {@linkcode ensureArm64Deno}. */
export interface EnsureArm64DenoOptions {
  /** Progress lines. @default console.error */
  log?: (line: string) => void;
  /** The cache directory. @default cacheDir() */
  cache?: string;
}

/** The recorded pin. */
export function arm64DenoPin(): Arm64DenoPin {
  return JSON.parse(Deno.readTextFileSync(new URL("./deno-arm64.json", import.meta.url)));
}

/**
 * Return the path of the verified arm64 `deno` binary, fetching it with `npm pack` when the cache
 * lacks it. Throws when a digest does not match (and removes the mismatching file it fetched).
 *
 * @example
 * ```ts
 * import { ensureArm64Deno } from "./fetch.ts";
 * const deno = await ensureArm64Deno();
 * ```
 */
export async function ensureArm64Deno(options: EnsureArm64DenoOptions = {}): Promise<string> {
  const { log = console.error, cache = cacheDir() } = options;
  const pin = arm64DenoPin();
  const dir = `${cache}/deno-arm64/${pin.version}`;
  Deno.mkdirSync(dir, { recursive: true });
  const tarball = `${dir}/${pin.tarball}`;
  if (!isFile(tarball)) {
    log(`fetching ${pin.package}@${pin.version} with npm pack`);
    await run("npm", ["pack", `${pin.package}@${pin.version}`, "--pack-destination", dir]);
  }
  const tarSum = await sha256File(tarball);
  if (tarSum !== pin.tarball_sha256) {
    Deno.removeSync(tarball);
    throw new Error(
      `${tarball}: SHA-256 ${tarSum}, expected ${pin.tarball_sha256} (build/arm64/deno-arm64.json); ` +
        "removed it, run again to refetch",
    );
  }
  const deno = `${dir}/deno`;
  if (!isFile(deno) || await sha256File(deno) !== pin.deno_sha256) {
    log(`extracting deno from ${pin.tarball}`);
    const tmp = Deno.makeTempDirSync({ dir, prefix: "extract-" });
    try {
      await run("tar", ["-xzf", tarball, "-C", tmp, "package/deno"]);
      const sum = await sha256File(`${tmp}/package/deno`);
      if (sum !== pin.deno_sha256) {
        throw new Error(`deno in ${tarball}: SHA-256 ${sum}, expected ${pin.deno_sha256}`);
      }
      Deno.chmodSync(`${tmp}/package/deno`, 0o755);
      Deno.renameSync(`${tmp}/package/deno`, deno);
    } finally {
      Deno.removeSync(tmp, { recursive: true });
    }
  }
  log(`${pin.package}@${pin.version}: tarball and binary match their recorded SHA-256`);
  return deno;
}

/** The SHA-256 of a file, hex. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  const file = await Deno.open(path);
  for await (const chunk of file.readable) hash.update(chunk); // closes the file at the end
  return hash.digest("hex");
}

async function run(cmd: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdin: "null", stdout: "null", stderr: "piped" })
    .output();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim();
    throw new Error(`${cmd} ${args.join(" ")} failed (exit ${out.code}): ${err}`);
  }
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}
