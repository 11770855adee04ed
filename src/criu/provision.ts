/**
 * Installing Debian trixie's CRIU 4.1.1 into a private prefix, for machines whose distro CRIU is
 * missing or fails `criu check` (Debian 12's 3.17 on kernels ≥ 6.13). The packages are fetched
 * with `apt-get download` through a private apt configuration (its own sources list, lists and
 * cache) pointed at the mirror of the system's own apt sources, unpacked with `dpkg -x`, and every
 * ELF executable is patched with `patchelf` to use the prefix's own dynamic loader and libraries.
 * Nothing outside the prefix is touched; the system's libraries are never replaced.
 *
 * @module
 */
import { type AptSource, debianMirror, systemAptSources } from "./apt_sources.ts";
import { criuPrefix, PREFIX_STAMP, prefixCriuPath } from "./locate.ts";
import { probeCriu } from "./probe.ts";
import { exists } from "../util/fs.ts";

/** The default Debian suite of the private install (CRIU 4.1.1). */
export const CRIU_SUITE = "trixie";
/** Suites `--criu-suite` accepts: trixie (4.1.1), and sid (4.2.x: inet sockets on Linux ≥ 6.16). */
export const CRIU_SUITES = ["trixie", "sid"] as const;
/** The root packages; their library dependencies (libc6 included) are added by apt-cache. */
export const CRIU_PACKAGES = ["criu", "libcompel1"];

/** Raised when provisioning cannot complete; the message says what to do. */
export class ProvisionError extends Error {
  /** @param message what failed and how to fix it */
  constructor(message: string) {
    super(message);
    this.name = "ProvisionError";
  }
}

/** Options of {@linkcode provisionCriu}. */
export interface ProvisionOptions {
  /** Install prefix. @default criuPrefix() */
  prefix?: string;
  /** Debian mirror URI. @default `$U2CM_DEBIAN_MIRROR`, else the system's apt sources' mirror */
  mirror?: string;
  /** Reinstall even when a working install is present. @default false */
  force?: boolean;
  /** Debian suite to take CRIU from. @default `$U2CM_CRIU_SUITE`, else "trixie" */
  suite?: typeof CRIU_SUITES[number];
  /** Progress lines. @default ignore */
  log?: (line: string) => void;
}

/** What {@linkcode provisionCriu} did. */
export interface ProvisionResult {
  /** The criu executable. */
  path: string;
  /** Its version. */
  version: string;
  /** False when a working install was already present. */
  installed: boolean;
  /** Debian packages unpacked (empty when nothing was installed). */
  packages: string[];
  /** The mirror used. */
  mirror?: string;
}

/**
 * Install CRIU into the private prefix unless a working install is already there (idempotent).
 * Throws {@linkcode ProvisionError} with an actionable message on failure.
 */
export async function provisionCriu(options: ProvisionOptions = {}): Promise<ProvisionResult> {
  const { prefix = criuPrefix(), force = false, log = () => {} } = options;
  const suite = options.suite ?? defaultSuite();
  const criu = prefixCriuPath(prefix);
  if (!force && exists(`${prefix}/${PREFIX_STAMP}`) && installedSuite(prefix) === suite) {
    const probe = await probeCriu(criu);
    if (probe.version) {
      log(`private CRIU ${probe.version} already installed at ${prefix}`);
      return { path: criu, version: probe.version, installed: false, packages: [] };
    }
    log(`private CRIU at ${prefix} does not run (${probe.checkDetail}); reinstalling`);
  }
  const source = mirrorSource(options.mirror);
  const debArch = debianArch();
  const work = `${prefix}.work-${Deno.pid}`;
  await Deno.remove(work, { recursive: true }).catch(() => {});
  try {
    const apt = aptOptions(work, source, debArch, suite);
    log(`fetching the ${suite} package lists from ${source.uri}`);
    await tool(
      "apt-get",
      [...apt, "-q", "--error-on=any", "update"],
      "apt-get update (private lists)",
    );
    const packages = await dependencyClosure(apt, suite);
    log(`downloading ${packages.length} packages: ${packages.join(" ")}`);
    await Deno.mkdir(`${work}/debs`, { recursive: true });
    await tool("apt-get", [...apt, "-q", "download", ...packages], "apt-get download", {
      cwd: `${work}/debs`,
    });
    const root = `${prefix}.new-${Deno.pid}`;
    await Deno.remove(root, { recursive: true }).catch(() => {});
    for await (const entry of Deno.readDir(`${work}/debs`)) {
      if (entry.name.endsWith(".deb")) {
        await tool("dpkg", ["-x", `${work}/debs/${entry.name}`, root], `dpkg -x ${entry.name}`);
      }
    }
    await patchTree(root, prefix, debArch);
    await Deno.remove(prefix, { recursive: true }).catch(() => {});
    await Deno.rename(root, prefix);
    const probe = await probeCriu(criu);
    if (!probe.version) {
      throw new ProvisionError(
        `the private CRIU at ${criu} does not run after install: ${probe.checkDetail}`,
      );
    }
    await Deno.writeTextFile(
      `${prefix}/${PREFIX_STAMP}`,
      JSON.stringify({ version: probe.version, suite, mirror: source.uri, packages }) +
        "\n",
    );
    log(`installed CRIU ${probe.version} at ${prefix}`);
    return { path: criu, version: probe.version, installed: true, packages, mirror: source.uri };
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}

/** The multiarch library directory and loader name for a Debian architecture. */
export function loaderFor(debArch: string): { libdir: string; loader: string } {
  if (debArch === "arm64") {
    return { libdir: "usr/lib/aarch64-linux-gnu", loader: "ld-linux-aarch64.so.1" };
  }
  return { libdir: "usr/lib/x86_64-linux-gnu", loader: "ld-linux-x86-64.so.2" };
}

/** The apt `-o` options of a private configuration under `work` for `source`. */
export function aptOptions(
  work: string,
  source: AptSource,
  debArch: string,
  suite: string = CRIU_SUITE,
): string[] {
  for (const d of ["etc/parts", "lists/partial", "cache/archives/partial"]) {
    Deno.mkdirSync(`${work}/${d}`, { recursive: true });
  }
  const signed = source.signedBy ? ` [signed-by=${source.signedBy}]` : "";
  Deno.writeTextFileSync(
    `${work}/etc/sources.list`,
    `deb${signed} ${source.uri} ${suite} main\n`,
  );
  return [
    "-o",
    `Dir::Etc::SourceList=${work}/etc/sources.list`,
    "-o",
    `Dir::Etc::SourceParts=${work}/etc/parts`,
    "-o",
    `Dir::State::Lists=${work}/lists`,
    "-o",
    `Dir::Cache=${work}/cache`,
    "-o",
    "Dir::State::status=/dev/null",
    "-o",
    `APT::Architecture=${debArch}`,
    "-o",
    "APT::Architectures=",
    "-o",
    "APT::Sandbox::User=root",
  ];
}

function mirrorSource(explicit?: string): AptSource {
  const uri = explicit ?? Deno.env.get("U2CM_DEBIAN_MIRROR");
  if (uri) return { uri, suites: [CRIU_SUITE] };
  const found = debianMirror(systemAptSources());
  if (!found) {
    throw new ProvisionError(
      "no Debian mirror in /etc/apt/sources.list or /etc/apt/sources.list.d/: set " +
        "U2CM_DEBIAN_MIRROR=http://<mirror>/debian and run 'u2cm doctor --fix' again",
    );
  }
  return found;
}

/** `$U2CM_CRIU_SUITE` when it names a known suite, else trixie. */
export function defaultSuite(): typeof CRIU_SUITES[number] {
  const env = Deno.env.get("U2CM_CRIU_SUITE");
  return (CRIU_SUITES as readonly string[]).includes(env ?? "")
    ? env as typeof CRIU_SUITES[number]
    : CRIU_SUITE;
}

/** The suite recorded by a completed private install, if any. */
export function installedSuite(prefix = criuPrefix()): string | undefined {
  try {
    return JSON.parse(Deno.readTextFileSync(`${prefix}/${PREFIX_STAMP}`)).suite;
  } catch {
    return undefined;
  }
}

function debianArch(): string {
  return Deno.build.arch === "aarch64" ? "arm64" : "amd64";
}

/** The root packages plus their recursive Depends that are real (not virtual) packages. */
async function dependencyClosure(apt: string[], suite: string): Promise<string[]> {
  const out = await tool("apt-cache", [
    ...apt,
    "depends",
    "--recurse",
    "--no-recommends",
    "--no-suggests",
    "--no-conflicts",
    "--no-breaks",
    "--no-replaces",
    "--no-enhances",
    ...CRIU_PACKAGES,
  ], "apt-cache depends");
  const names = new Set<string>();
  for (const line of out.split("\n")) {
    if (/^[a-z0-9][a-z0-9+.-]*$/.test(line.trim()) && !/^\s/.test(line)) names.add(line.trim());
  }
  for (const p of CRIU_PACKAGES) {
    if (!names.has(p)) throw new ProvisionError(`package ${p} not found in ${suite}`);
  }
  return [...names].sort();
}

/** Point every dynamically linked ELF executable at the prefix's loader and libraries. */
async function patchTree(root: string, prefix: string, debArch: string): Promise<void> {
  const { libdir, loader } = loaderFor(debArch);
  if (!exists(`${root}/${libdir}/${loader}`)) {
    throw new ProvisionError(`the unpacked libc6 lacks ${libdir}/${loader}`);
  }
  const rpath = [`${prefix}/${libdir}`, `${prefix}/lib/${libdir.split("/").pop()}`].join(":");
  for (const dir of ["usr/sbin", "usr/bin", "sbin", "bin"]) {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(`${root}/${dir}`)];
    } catch {
      continue;
    }
    for (const e of entries) {
      const path = `${root}/${dir}/${e.name}`;
      if (!e.isFile || !isDynamicElf(path)) continue;
      await tool("patchelf", [
        "--set-interpreter",
        `${prefix}/${libdir}/${loader}`,
        "--force-rpath",
        "--set-rpath",
        rpath,
        path,
      ], `patchelf ${dir}/${e.name}`);
    }
  }
}

/** An ELF file with a PT_INTERP program header (a dynamically linked executable). */
function isDynamicElf(path: string): boolean {
  const file = Deno.openSync(path);
  try {
    const head = new Uint8Array(64);
    if (file.readSync(head) !== 64) return false;
    if (head[0] !== 0x7f || head[1] !== 0x45 || head[2] !== 0x4c || head[3] !== 0x46) return false;
    if (head[4] !== 2) return false; // 64-bit only
    const v = new DataView(head.buffer);
    const phoff = Number(v.getBigUint64(32, true));
    const phentsize = v.getUint16(54, true);
    const phnum = v.getUint16(56, true);
    const table = new Uint8Array(phentsize * phnum);
    file.seekSync(phoff, Deno.SeekMode.Start);
    if (file.readSync(table) !== table.length) return false;
    const t = new DataView(table.buffer);
    for (let i = 0; i < phnum; i++) if (t.getUint32(i * phentsize, true) === 3) return true;
    return false;
  } finally {
    file.close();
  }
}

async function tool(
  cmd: string,
  args: string[],
  what: string,
  opts: { cwd?: string } = {},
): Promise<string> {
  let out;
  try {
    out = await new Deno.Command(cmd, {
      args,
      cwd: opts.cwd,
      env: { DEBIAN_FRONTEND: "noninteractive", LC_ALL: "C" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      const pkg = cmd === "patchelf" ? "patchelf" : cmd.startsWith("apt") ? "apt" : "dpkg";
      throw new ProvisionError(`'${cmd}' is not installed: apt-get install ${pkg}`);
    }
    throw e;
  }
  const dec = new TextDecoder();
  if (out.code !== 0) {
    const err = dec.decode(out.stderr).trim().split("\n").slice(-4).join("\n");
    const hint = cmd.startsWith("apt")
      ? " (is the Debian mirror reachable? set U2CM_DEBIAN_MIRROR to another mirror)"
      : "";
    throw new ProvisionError(`${what} failed (exit ${out.code})${hint}:\n${err}`);
  }
  return dec.decode(out.stdout);
}
