/**
 * Installing a node: the `u2cm` executable, the `u2cm-agent.service` unit, the configuration and
 * the node identity, all under an optional prefix. Everything created is recorded in a manifest
 * next to the configuration, and {@linkcode uninstall} removes exactly that.
 *
 * @example
 * ```ts
 * import { install, uninstall } from "./install.ts";
 * const done = await install({ prefix: "/tmp/u2cm-root" });
 * console.log(done.paths.unit);
 * await uninstall({ prefix: "/tmp/u2cm-root" });
 * ```
 *
 * @module
 */
import { hasIdentity, IDENTITY_FILES, initIdentity } from "../peer/identity.ts";
import {
  type Config,
  DEFAULT_CONFIG_PATH,
  defaultConfig,
  loadConfig,
  writeConfig,
} from "./config.ts";
import { renderUnit } from "./unit.ts";

/** The unit's file name. */
export const UNIT_NAME = "u2cm-agent.service";

/** Where an installation puts its files. */
export interface InstallPaths {
  /** The prefix ("" for the real root). */
  prefix: string;
  /** The `u2cm` executable. */
  binary: string;
  /** The systemd unit. */
  unit: string;
  /** The configuration file. */
  config: string;
  /** The install manifest. */
  manifest: string;
}

/** The paths of an installation under `prefix` ("" = the real root). */
export function installPaths(prefix = ""): InstallPaths {
  const p = prefix.replace(/\/+$/, "");
  return {
    prefix: p,
    binary: `${p}/usr/local/bin/u2cm`,
    unit: `${p}/etc/systemd/system/${UNIT_NAME}`,
    config: `${p}${DEFAULT_CONFIG_PATH}`,
    manifest: `${p}/etc/u2cm/install.json`,
  };
}

/** Options of {@linkcode install}. */
export interface InstallOptions {
  /** Install under this directory instead of `/`. @default "" */
  prefix?: string;
  /** A configuration file to install (validated) instead of the defaults. */
  configSource?: string;
  /** Replace an existing installation's files. @default false */
  force?: boolean;
  /** Create the node identity (needs openssl). @default true */
  identity?: boolean;
  /** The executable to install. @default this binary, or a wrapper when running from source */
  executable?: Executable;
}

/** What gets installed as `u2cm`. */
export type Executable = { kind: "binary"; path: string } | { kind: "wrapper"; script: string };

/** What {@linkcode install} did. */
export interface InstallResult {
  /** Where things are. */
  paths: InstallPaths;
  /** The installed configuration. */
  config: Config;
  /** Whether the binary was copied or a wrapper written. */
  executable: Executable["kind"];
  /** Identity created, kept (already there) or skipped. */
  identity: "created" | "kept" | "skipped";
  /** Files created. */
  files: string[];
}

/** Thrown when an installation step cannot proceed; says why and how to fix it. */
export class InstallError extends Error {
  /**
   * @param message what is wrong and what to do
   * @param kind the category the CLI maps to an exit code
   */
  constructor(message: string, readonly kind: "exists" | "environment" | "input" = "input") {
    super(message);
    this.name = "InstallError";
  }
}

interface Manifest {
  version: 1;
  prefix: string;
  files: string[];
  dirs: string[];
}

/** The executable for this process: itself when compiled, else a wrapper running main.ts. */
export function currentExecutable(): Executable {
  if (Deno.build.standalone) return { kind: "binary", path: Deno.execPath() };
  const root = new URL("../../", import.meta.url).pathname;
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const script = [
    "#!/bin/sh",
    "# u2cm wrapper written by 'u2cm install' (installed from a source checkout)",
    `exec ${q(Deno.execPath())} run -A --config ${q(`${root}deno.json`)} ${
      q(`${root}main.ts`)
    } "$@"`,
    "",
  ].join("\n");
  return { kind: "wrapper", script };
}

/** Install a node; throws {@linkcode InstallError}. */
export async function install(options: InstallOptions = {}): Promise<InstallResult> {
  const { prefix = "", configSource, force = false, identity = true } = options;
  const executable = options.executable ?? currentExecutable();
  const paths = installPaths(prefix);
  if (!force) {
    for (const path of [paths.binary, paths.unit, paths.manifest]) {
      if (exists(path)) {
        throw new InstallError(
          `${path} exists: u2cm is installed here (use --force to replace)`,
          "exists",
        );
      }
    }
  }
  const base = configSource ? loadConfig(configSource) : defaultConfig();
  const config: Config = {
    ...base,
    stateDir: `${paths.prefix}${base.stateDir}`,
    cacheDir: `${paths.prefix}${base.cacheDir}`,
  };
  const manifest: Manifest = { version: 1, prefix: paths.prefix, files: [], dirs: [] };
  const previous = readManifest(paths.manifest);
  if (previous) {
    manifest.files.push(...previous.files);
    manifest.dirs.push(...previous.dirs);
  }
  const track = (path: string) => {
    if (!manifest.files.includes(path)) manifest.files.push(path);
  };
  const mkdir = (dir: string, mode = 0o755) => {
    for (const d of missingDirs(dir)) if (!manifest.dirs.includes(d)) manifest.dirs.push(d);
    Deno.mkdirSync(dir, { recursive: true, mode });
  };

  mkdir(dirname(paths.binary));
  if (executable.kind === "binary") Deno.copyFileSync(executable.path, paths.binary);
  else Deno.writeTextFileSync(paths.binary, executable.script);
  Deno.chmodSync(paths.binary, 0o755);
  track(paths.binary);

  mkdir(dirname(paths.config));
  writeConfig(paths.config, config);
  track(paths.config);

  mkdir(dirname(paths.unit));
  const unit = renderUnit({
    binary: paths.binary,
    config: paths.config,
    stateDir: config.stateDir,
    cacheDir: config.cacheDir,
    capabilities: config.capabilities,
  });
  Deno.writeTextFileSync(paths.unit, unit, { mode: 0o644 });
  track(paths.unit);

  mkdir(config.stateDir, 0o700);
  mkdir(config.cacheDir, 0o700);
  let identityState: InstallResult["identity"] = "skipped";
  if (identity) {
    const had = hasIdentity(config.stateDir);
    try {
      await initIdentity(config.stateDir);
    } catch (e) {
      throw new InstallError(
        `creating the node identity in ${config.stateDir} failed: ${(e as Error).message}`,
        "environment",
      );
    }
    identityState = had ? "kept" : "created";
    if (!had) { for (const f of Object.values(IDENTITY_FILES)) track(`${config.stateDir}/${f}`); }
  }
  track(paths.manifest);
  Deno.writeTextFileSync(paths.manifest, JSON.stringify(manifest, null, 2) + "\n");
  return {
    paths,
    config,
    executable: executable.kind,
    identity: identityState,
    files: manifest.files,
  };
}

/** Options of {@linkcode uninstall}. */
export interface UninstallOptions {
  /** The prefix of the installation. @default "" */
  prefix?: string;
  /** Keep the state directory (identity, peers, migration records). @default false */
  keepState?: boolean;
}

/** What {@linkcode uninstall} removed and kept. */
export interface UninstallResult {
  /** Paths removed. */
  removed: string[];
  /** Paths kept (state with keepState, directories that hold files not ours). */
  kept: string[];
}

/**
 * Remove what {@linkcode install} created under `prefix`: its files, the state and cache
 * directories it made (unless `keepState`), then the directories it made, when empty.
 */
export function uninstall(options: UninstallOptions = {}): UninstallResult {
  const { prefix = "", keepState = false } = options;
  const paths = installPaths(prefix);
  const manifest = readManifest(paths.manifest);
  if (!manifest) {
    throw new InstallError(
      `no installation under '${paths.prefix || "/"}' (${paths.manifest} is missing)`,
      "input",
    );
  }
  const config = readInstalledConfig(paths.config);
  const result: UninstallResult = { removed: [], kept: [] };
  const stateDir = config?.stateDir;
  for (const file of manifest.files) {
    if (keepState && stateDir && file.startsWith(`${stateDir}/`)) {
      result.kept.push(file);
      continue;
    }
    if (remove(file)) result.removed.push(file);
  }
  const ownedTrees = [config?.cacheDir, keepState ? undefined : stateDir];
  for (const tree of ownedTrees) {
    if (tree && manifest.dirs.includes(tree) && remove(tree, true)) result.removed.push(tree);
  }
  const dirs = [...manifest.dirs].sort((a, b) => b.length - a.length);
  for (const dir of dirs) {
    if (!exists(dir)) continue;
    if (isEmptyDir(dir)) {
      Deno.removeSync(dir);
      result.removed.push(dir);
    } else result.kept.push(dir);
  }
  return result;
}

function readInstalledConfig(path: string): Config | undefined {
  try {
    return loadConfig(path);
  } catch {
    return undefined;
  }
}

function readManifest(path: string): Manifest | undefined {
  try {
    const m = JSON.parse(Deno.readTextFileSync(path));
    if (m?.version === 1 && Array.isArray(m.files) && Array.isArray(m.dirs)) return m;
  } catch { /* absent or unreadable */ }
  return undefined;
}

function missingDirs(dir: string): string[] {
  const out: string[] = [];
  for (let d = dir; d !== "" && d !== "/" && !exists(d); d = dirname(d)) out.push(d);
  return out;
}

function dirname(path: string): string {
  const i = path.lastIndexOf("/");
  return i <= 0 ? "/" : path.slice(0, i);
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

function isEmptyDir(path: string): boolean {
  for (const _ of Deno.readDirSync(path)) return false;
  return true;
}

function remove(path: string, recursive = false): boolean {
  try {
    Deno.removeSync(path, { recursive });
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}
