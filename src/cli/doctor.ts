/**
 * `u2cm doctor [--fix]`: what migration can use on this machine — CRIU (version, `criu check`),
 * soft-dirty, userfaultfd, PAGEMAP_SCAN, `fs.pipe-max-size`, arch, root, kernel — and, with
 * `--fix`, a private CRIU 4.1.1 where the system's is missing or broken, plus the pipe size.
 *
 * @module
 */
import type { Command } from "commander";
import {
  CRIU_SUITES,
  criuFeature,
  criuPrefix,
  defaultSuite,
  ensurePipeMaxSize,
  hostFacts,
  installedSuite,
  LAZY_PIPE_MAX_SIZE,
  locateCriu,
  probeCriu,
  provisionCriu,
  ProvisionError,
} from "../criu/mod.ts";
import {
  probePagemapScan,
  type ProbeResult,
  probeSoftDirty,
  probeUffdWp,
} from "../tracker/probe.ts";
import { CliError, ExitCode } from "./errors.ts";
import { detectRuntimes, type RuntimeReport } from "../container/runtimes.ts";
import { parseChoice } from "./options.ts";

const FORMATS = ["table", "json"] as const;

/** Add `doctor` to the program. */
export function register(program: Command): void {
  program
    .command("doctor")
    .description("report what live migration can use here; --fix provisions CRIU")
    .option("--fix", "install a private CRIU 4.1.1 if needed and raise fs.pipe-max-size (root)")
    .option("--format <format>", `output format: ${FORMATS.join("|")}`, "table")
    .option(
      "--criu-suite <suite>",
      `Debian suite for --fix: ${
        CRIU_SUITES.join("|")
      } (sid: CRIU 4.2, TCP sockets on Linux ≥ 6.16)`,
    )
    .action(async (opts: DoctorOptions) => await runDoctor(opts));
}

/** The doctor's report, as printed with `--format json`. */
export interface DoctorReport {
  /** CRIU is present and `criu check` passes: migration can run. */
  ok: boolean;
  criu: {
    path: string | null;
    source: string | null;
    version: string | null;
    check_ok: boolean;
    check_detail: string;
    private_prefix: string;
  };
  soft_dirty: ProbeResult;
  /** The dirty-page tracker pre-copy uses here (`hash` on arm64, which has no soft-dirty). */
  precopy_tracker: { backend: "softdirty" | "hash"; detail: string };
  /** CRIU can dump TCP/UDP sockets on this kernel. */
  inet_sockets: ProbeResult;
  userfaultfd: ProbeResult;
  pagemap_scan: ProbeResult;
  /** The uffd-wp tracker (userfaultfd WP_ASYNC + PAGEMAP_SCAN) works here (`U2CM_TRACKER=uffd-wp`, `trace --backend uffd-wp`). */
  uffd_wp: ProbeResult;
  pipe_max_size: { bytes: number | null; needed_for_lazy: number; lazy_ok: boolean };
  arch: string;
  root: boolean;
  kernel: string;
  /** Engines usable here. */
  engines: { delta: boolean; predump: boolean; lazy: boolean; hybrid: boolean };
  /** Container runtimes found (podman, runc, crun): versions, CRIU reached, support. */
  runtimes: RuntimeReport[];
  /** What `--fix` changed. */
  fixed: string[];
}

interface DoctorOptions {
  fix?: boolean;
  format: string;
  criuSuite?: string;
}

async function runDoctor(opts: DoctorOptions): Promise<void> {
  const format = parseChoice("--format", opts.format, FORMATS);
  const suite = opts.criuSuite === undefined
    ? defaultSuite()
    : parseChoice("--criu-suite", opts.criuSuite, CRIU_SUITES);
  const fixed: string[] = [];
  const log = (line: string) => console.error(`u2cm doctor: ${line}`);
  if (opts.fix) await fix(fixed, log, suite);
  const report = await collect(fixed);
  if (format === "json") console.log(JSON.stringify(report, null, 2));
  else printTable(report);
  if (!report.ok) {
    const why = report.criu.path === null
      ? "no CRIU found"
      : `CRIU at ${report.criu.path} fails 'criu check' (${report.criu.check_detail})`;
    const hint = opts.fix
      ? report.root ? "see the messages above" : "run 'u2cm doctor --fix' as root"
      : "run 'u2cm doctor --fix' (as root) to install a private CRIU 4.1.1";
    throw new CliError(`${why}: ${hint}`, ExitCode.Environment);
  }
}

async function fix(
  fixed: string[],
  log: (line: string) => void,
  suite: typeof CRIU_SUITES[number],
): Promise<void> {
  const found = locateCriu();
  const probe = found ? await probeCriu(found.path) : undefined;
  const root = Deno.uid() === 0;
  const wrongSuite = found?.source === "private" && installedSuite() !== suite;
  const works = probe?.version !== undefined && (probe.checkOk || !root) && !wrongSuite;
  if (found?.source === "env") {
    if (!works) {
      throw new CliError(
        `U2CM_CRIU=${found.path} does not work (${probe?.checkDetail}); unset it to let ` +
          "'u2cm doctor --fix' install a private CRIU",
        ExitCode.Environment,
      );
    }
  } else if (!works) {
    log(
      found
        ? `${found.source} CRIU at ${found.path} is unusable (${probe?.checkDetail})`
        : "no CRIU installed",
    );
    try {
      const result = await provisionCriu({ force: found?.source === "private", log, suite });
      if (result.installed) {
        fixed.push(`installed CRIU ${result.version} at ${criuPrefix()} from ${result.mirror}`);
      }
    } catch (e) {
      if (e instanceof ProvisionError) {
        throw new CliError(`could not install CRIU: ${e.message}`, ExitCode.Environment);
      }
      if (e instanceof Deno.errors.PermissionDenied) {
        throw new CliError(
          `could not write the CRIU prefix ${criuPrefix()}: ${e.message}; set U2CM_CRIU_PREFIX ` +
            "to a writable directory",
          ExitCode.Environment,
        );
      }
      throw e;
    }
  }
  if (root) {
    const before = hostFacts().pipeMaxSize ?? 0;
    if (before < LAZY_PIPE_MAX_SIZE) {
      const now = ensurePipeMaxSize();
      fixed.push(`fs.pipe-max-size ${before} -> ${now}`);
    }
  } else {
    log("not root: fs.pipe-max-size left as is (lazy migration needs root anyway)");
  }
}

async function collect(fixed: string[]): Promise<DoctorReport> {
  const host = hostFacts();
  const found = locateCriu();
  const probe = found ? await probeCriu(found.path) : undefined;
  const criuOk = probe?.checkOk === true;
  const uffdByCriu = criuOk && found ? await criuFeature(found.path, "uffd-noncoop") : undefined;
  const userfaultfd: ProbeResult = uffdByCriu === undefined
    ? { available: host.userfaultfd, detail: host.userfaultfdDetail }
    : {
      available: uffdByCriu,
      detail: `criu check --feature uffd-noncoop ${uffdByCriu ? "passed" : "failed"}; ` +
        host.userfaultfdDetail,
    };
  const softDirty = safeProbe(probeSoftDirty);
  const pagemapScan = safeProbe(probePagemapScan);
  const lazyOk = (host.pipeMaxSize ?? 0) >= LAZY_PIPE_MAX_SIZE;
  return {
    ok: criuOk,
    criu: {
      path: found?.path ?? null,
      source: found?.source ?? null,
      version: probe?.version ?? null,
      check_ok: criuOk,
      check_detail: probe?.checkDetail ?? "no CRIU binary",
      private_prefix: criuPrefix(),
    },
    soft_dirty: softDirty,
    precopy_tracker: precopyTracker(host.arch, softDirty),
    inet_sockets: inetSockets(probe?.version, host.kernel),
    userfaultfd,
    pagemap_scan: pagemapScan,
    uffd_wp: safeProbe(probeUffdWp),
    pipe_max_size: {
      bytes: host.pipeMaxSize ?? null,
      needed_for_lazy: LAZY_PIPE_MAX_SIZE,
      lazy_ok: lazyOk,
    },
    arch: host.arch,
    root: host.root,
    kernel: host.kernel,
    engines: {
      delta: criuOk,
      predump: criuOk && softDirty.available,
      lazy: criuOk && userfaultfd.available && lazyOk,
      hybrid: criuOk && userfaultfd.available && lazyOk,
    },
    runtimes: await detectRuntimes().catch(() => []),
    fixed,
  };
}

/**
 * Linux 6.16 restricted SO_PASSCRED/SO_PASSSEC to unix and netlink sockets; CRIU before 4.2 reads
 * them on every socket and fails to dump TCP/UDP sockets there.
 */
export function inetSockets(criuVersion: string | undefined, kernel: string): ProbeResult {
  if (criuVersion === undefined) return { available: false, detail: "no CRIU" };
  const [kMaj, kMin] = kernel.split(".").map((x) => parseInt(x, 10));
  const [cMaj, cMin] = criuVersion.split(".").map((x) => parseInt(x, 10));
  const newKernel = kMaj > 6 || (kMaj === 6 && kMin >= 16);
  const oldCriu = cMaj < 4 || (cMaj === 4 && cMin < 2);
  return newKernel && oldCriu
    ? {
      available: false,
      detail: `CRIU ${criuVersion} cannot dump TCP/UDP sockets on Linux ${kMaj}.${kMin} ` +
        "(SO_PASSCRED); 'u2cm doctor --fix --criu-suite sid' installs CRIU 4.2",
    }
    : { available: true, detail: `CRIU ${criuVersion} on Linux ${kMaj}.${kMin}` };
}

/**
 * Which tracker pre-copy uses on this host: soft-dirty where the kernel sets the bit, else the
 * content-hash tracker. arm64 kernels have no soft-dirty at all, so there it is always `hash`.
 *
 * @example
 * ```ts
 * precopyTracker("aarch64", { available: false, detail: "" }).backend; // "hash"
 * ```
 */
export function precopyTracker(
  arch: string,
  softDirty: ProbeResult,
): DoctorReport["precopy_tracker"] {
  if (arch === "aarch64") {
    return {
      backend: "hash",
      detail: "content-hash tracker: arm64 has no soft-dirty, so pre-copy compares page " +
        "hashes each round (delta engine; predump cannot run)",
    };
  }
  return softDirty.available
    ? { backend: "softdirty", detail: "soft-dirty bits (clear_refs, pagemap)" }
    : {
      backend: "hash",
      detail: "content-hash tracker: the kernel sets no soft-dirty bits here, so pre-copy " +
        "compares page hashes each round (delta engine; predump cannot run)",
    };
}

function safeProbe(probe: () => ProbeResult): ProbeResult {
  try {
    return probe();
  } catch (e) {
    return { available: false, detail: `probe failed: ${(e as Error).message}` };
  }
}

function yes(b: boolean): string {
  return b ? "yes" : "no";
}

function printTable(r: DoctorReport): void {
  const mark = (ok: boolean) => (ok ? "ok  " : "no  ");
  const rows: [string, boolean, string][] = [
    [
      "criu",
      r.criu.check_ok,
      r.criu.path === null
        ? "not found (u2cm doctor --fix installs CRIU 4.1.1 privately)"
        : `${
          r.criu.version ?? "?"
        } (${r.criu.source}) ${r.criu.path}; check: ${r.criu.check_detail}`,
    ],
    ["soft-dirty", r.soft_dirty.available, r.soft_dirty.detail],
    ["pre-copy", true, r.precopy_tracker.detail],
    ["inet-sockets", r.inet_sockets.available, r.inet_sockets.detail],
    ["userfaultfd", r.userfaultfd.available, r.userfaultfd.detail],
    ["pagemap-scan", r.pagemap_scan.available, r.pagemap_scan.detail],
    ["uffd-wp", r.uffd_wp.available, r.uffd_wp.detail],
    [
      "pipe-max-size",
      r.pipe_max_size.lazy_ok,
      `${r.pipe_max_size.bytes ?? "?"} bytes` +
      (r.pipe_max_size.lazy_ok
        ? ""
        : ` (lazy needs ${r.pipe_max_size.needed_for_lazy}; u2cm doctor --fix as root)`),
    ],
    ["root", r.root, r.root ? "yes" : "no (CRIU dump/restore need root)"],
  ];
  for (const [name, ok, detail] of rows) console.log(`${name.padEnd(14)} ${mark(ok)}${detail}`);
  console.log(`${"arch".padEnd(14)}     ${r.arch}`);
  console.log(`${"kernel".padEnd(14)}     ${r.kernel}`);
  const engines = Object.entries(r.engines).map(([k, v]) => `${k}${v ? "" : " (no)"}`).join(", ");
  console.log(`${"engines".padEnd(14)}     ${engines}`);
  for (const rt of r.runtimes) {
    const s = rt.supports;
    const what = rt.found
      ? `${rt.version}; criu ${rt.criu.ok ? `${rt.criu.version} ok` : "not reached"}; ` +
        `checkpoint ${yes(s.checkpoint)}, restore --name ${yes(s.restore_new_name)}, ` +
        `lazy pages ${yes(s.lazy_pages)}; ${rt.detail}`
      : rt.detail;
    console.log(`${rt.name.padEnd(14)} ${mark(rt.migratable)}${what}`);
  }
  for (const f of r.fixed) console.log(`${"fixed".padEnd(14)}     ${f}`);
}
