/**
 * The files a compiled `u2cm` embeds besides its code: the native shim for the target's
 * architecture, the deployment models (`models/*.onnx` and their `.json` sidecars) and the
 * onnxruntime-web wasm runtime from the npm cache; plus the npm files left out of the binary.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { embeddedShimRelativePath, embeddedTreeGuardRelativePath } from "../src/native/embedded.ts";
import type { CompileTarget } from "./denort.ts";

/** The repository root, with a trailing slash. */
export const ROOT = new URL("..", import.meta.url).pathname;

/** One embedded file. */
export interface EmbedEntry {
  /** What the file is for. */
  role: "shim" | "tree-guard" | "model" | "model-meta" | "ort-wasm" | "ort-loader";
  /** Absolute path at build time. */
  path: string;
  /** Size in bytes. */
  bytes: number;
  /** SHA-256 of the contents, hex. */
  sha256: string;
}

/** The npm package version pinned in deno.json for `name`. */
export function pinnedNpmVersion(name: string): string {
  const config = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`));
  const spec: string | undefined = config.imports?.[name];
  const match = spec?.match(/^npm:(?:@[^/]+\/)?[^@]+@(\d[^/]*)$/);
  if (!match) throw new Error(`deno.json pins no npm version for '${name}' (got '${spec}')`);
  return match[1];
}

/** Deno's global npm cache directory. */
export function npmCacheDir(): string {
  const out = new Deno.Command(Deno.execPath(), { args: ["info", "--json"], stderr: "null" })
    .outputSync();
  if (!out.success) throw new Error("'deno info --json' failed");
  return JSON.parse(new TextDecoder().decode(out.stdout)).npmCache;
}

/** The onnxruntime-web package directory in the npm cache (run `deno install` first). */
export function ortPackageDir(): string {
  return `${npmCacheDir()}/registry.npmjs.org/onnxruntime-web/${
    pinnedNpmVersion("onnxruntime-web")
  }`;
}

/** onnxruntime-web files the Deno (node-condition) build loads: these stay in the binary. */
export const ORT_RUNTIME_FILES = [
  "dist/ort.node.min.mjs",
  "dist/ort-wasm-simd-threaded.mjs",
  "dist/ort-wasm-simd-threaded.wasm",
] as const;

/**
 * Files of onnxruntime-web that the Deno build never loads (browser bundles, WebGPU/JSEP/JSPI
 * wasm variants, source maps): passed to `deno compile --exclude` to keep the binary small.
 */
export function ortExcludes(pkgDir = ortPackageDir()): string[] {
  const keep = new Set<string>(ORT_RUNTIME_FILES);
  keep.add("dist/ort.node.min.js");
  const out: string[] = [`${pkgDir}/docs`];
  for (const entry of Deno.readDirSync(`${pkgDir}/dist`)) {
    const rel = `dist/${entry.name}`;
    if (entry.isFile && !keep.has(rel) && entry.name !== "package.json") {
      out.push(`${pkgDir}/${rel}`);
    }
  }
  return out.sort();
}

/** The deployment models: `models/*.onnx` with their `.json` sidecars (not `models/loo/`). */
export function modelFiles(): string[] {
  const out: string[] = [];
  for (const entry of Deno.readDirSync(`${ROOT}models`)) {
    if (entry.isFile && entry.name.endsWith(".onnx")) {
      out.push(`${ROOT}models/${entry.name}`);
      out.push(`${ROOT}models/${entry.name.replace(/\.onnx$/, ".json")}`);
    }
  }
  return out.sort();
}

/** The staged shim path of a target (absolute). */
export function stagedShim(target: CompileTarget): string {
  return `${ROOT}${embeddedShimRelativePath(target.arch)}`;
}

/** The staged tree guard path of a target (absolute). */
export function stagedTreeGuard(target: CompileTarget): string {
  return `${ROOT}${embeddedTreeGuardRelativePath(target.arch)}`;
}

/**
 * The embed list of one target. Throws naming every listed file that does not exist.
 *
 * @param target the compile target
 * @param pkgDir the onnxruntime-web package directory
 */
export function embedList(target: CompileTarget, pkgDir = ortPackageDir()): EmbedEntry[] {
  const wanted: Array<[EmbedEntry["role"], string]> = [
    ["shim", stagedShim(target)],
    ["tree-guard", stagedTreeGuard(target)],
    ...modelFiles().map((p): [EmbedEntry["role"], string] => [
      p.endsWith(".onnx") ? "model" : "model-meta",
      p,
    ]),
    ["ort-wasm", `${pkgDir}/dist/ort-wasm-simd-threaded.wasm`],
    ["ort-loader", `${pkgDir}/dist/ort-wasm-simd-threaded.mjs`],
  ];
  const missing = wanted.filter(([, p]) => !isFile(p)).map(([, p]) => p);
  if (missing.length > 0) {
    throw new Error(`files to embed are missing:\n  ${missing.join("\n  ")}`);
  }
  return wanted.map(([role, path]) => {
    const data = Deno.readFileSync(path);
    return { role, path, bytes: data.length, sha256: sha256(data) };
  });
}

/** Hex SHA-256 of bytes. */
export function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}
