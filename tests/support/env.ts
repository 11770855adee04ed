/**
 * Environment requirements of tests. A test that needs root, a command, CRIU or network namespaces
 * calls one of these first: when the requirement is missing it throws with the reason and the fix,
 * so the test fails loudly (in CI and locally) instead of silently skipping.
 *
 * @module
 */
import { locateCriu } from "../../src/criu/locate.ts";
import { hashDiff } from "../../src/native/ffi.ts";

/** Throw unless running as root. */
export function requireRoot(why: string): void {
  if (Deno.uid() !== 0) {
    throw new Error(`this test needs root (${why}); run the test task as root`);
  }
}

/** Throw unless `name` is an executable on PATH; returns its path. */
export function requireCommand(name: string, debianPackage = name): string {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    const path = `${dir}/${name}`;
    try {
      const info = Deno.statSync(path);
      if (info.isFile && (info.mode ?? 0) & 0o111) return path;
    } catch { /* not here */ }
  }
  throw new Error(
    `this test needs '${name}' (Debian package ${debianPackage}); the test task installs it — ` +
      `run 'deno task test' or 'apt-get install ${debianPackage}'`,
  );
}

/** True when running under CI (`CI=true`). */
export function inCI(): boolean {
  return Deno.env.get("CI") === "true";
}

/** What a test can need beyond computing, files and loopback sockets. */
export type Capability = "ptrace" | "criu";

/** What each capability means, as the lane summaries print it. */
export const CAPABILITIES: Record<Capability, string> = {
  ptrace: "reading another process's memory (process_vm_readv)",
  criu: "a CRIU built for the architecture this Deno runs as",
};

/** The result of probing a capability. */
export interface CapabilityProbe {
  /** The capability works here. */
  ok: boolean;
  /** What the probe saw. */
  detail: string;
}

const probed = new Map<Capability, CapabilityProbe>();

/**
 * Probe a capability by trying it (cached per process): `ptrace` reads a page of a child
 * process with the shim's process_vm_readv; `criu` looks for a CRIU whose ELF machine matches
 * `Deno.build.arch`.
 *
 * @example
 * ```ts
 * const { ok, detail } = probeCapability("ptrace");
 * ```
 */
export function probeCapability(cap: Capability): CapabilityProbe {
  let result = probed.get(cap);
  if (!result) {
    result = cap === "ptrace" ? probePtrace() : probeCriuArch();
    probed.set(cap, result);
  }
  return result;
}

/** Throw unless the capability works here (with what the probe saw). */
export function requireCapability(cap: Capability): void {
  const { ok, detail } = probeCapability(cap);
  if (!ok) throw new Error(`this test needs ${CAPABILITIES[cap]}, which fails here: ${detail}`);
}

/**
 * The capabilities this run declared it runs without (`$U2CM_LANE_WITHOUT`, comma-separated; the
 * arm64 lane sets it). Only for these may a test be left out instead of failing.
 */
export function laneWithout(): Capability[] {
  const list = (Deno.env.get("U2CM_LANE_WITHOUT") ?? "").split(",").map((s) => s.trim());
  return list.filter((s): s is Capability => s in CAPABILITIES);
}

/**
 * Register a test that needs `caps`. It runs, and fails loudly through
 * {@linkcode requireCapability}, whenever a capability is missing, except when the run declared
 * it lacks that capability (`$U2CM_LANE_WITHOUT`) and the probe confirms it: then the test is
 * registered as ignored and one line naming it and the reason is appended to
 * `$U2CM_LANE_UNAVAILABLE` for the lane's summary.
 *
 * @example
 * ```ts
 * testNeeding(["ptrace"], "hashes pages of a running workload", () => {});
 * ```
 */
export function testNeeding(
  caps: Capability[],
  name: string,
  fn: () => void | Promise<void>,
): void {
  const declared = laneWithout();
  const lacking = caps.filter((c) => declared.includes(c) && !probeCapability(c).ok);
  if (lacking.length > 0) {
    const report = Deno.env.get("U2CM_LANE_UNAVAILABLE");
    if (report) {
      const file = new URL(Deno.mainModule).pathname.replace(/^.*\/tests\//, "tests/");
      const lines = lacking.map((c) =>
        JSON.stringify({ file, test: name, capability: c, detail: probeCapability(c).detail }) +
        "\n"
      );
      Deno.writeTextFileSync(report, lines.join(""), { append: true });
    }
    Deno.test({ name, ignore: true, fn });
    return;
  }
  Deno.test(name, async () => {
    for (const c of caps) requireCapability(c);
    await fn();
  });
}

function probePtrace(): CapabilityProbe {
  const child = new Deno.Command("sleep", { args: ["30"], stdin: "null", stdout: "null" }).spawn();
  try {
    const deadline = Date.now() + 5000;
    let addr: number | undefined;
    while (addr === undefined && Date.now() < deadline) {
      try {
        if (Deno.readLinkSync(`/proc/${child.pid}/exe`).endsWith("/sleep")) {
          const first = Deno.readTextFileSync(`/proc/${child.pid}/maps`).split("\n")[0];
          addr = parseInt(first.split("-")[0], 16);
        }
      } catch { /* not exec'd yet */ }
      if (addr === undefined) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
    if (addr === undefined) return { ok: false, detail: "the probe's child never showed its maps" };
    const stats = new BigUint64Array(3);
    hashDiff(child.pid, addr, 1, {
      present: new Uint8Array([1]),
      hashes: new BigUint64Array(2),
      known: new Uint8Array(1),
      dirty: new Uint32Array(1),
      readBuffer: new Uint8Array(4096),
      stats,
    });
    return stats[0] === 1n
      ? { ok: true, detail: "read a page of a child process" }
      : { ok: false, detail: `process_vm_readv read ${stats[0]} of 1 page of a child process` };
  } catch (e) {
    return { ok: false, detail: `process_vm_readv on a child process: ${(e as Error).message}` };
  } finally {
    child.kill("SIGKILL");
    child.status.catch(() => {});
    child.unref();
  }
}

const ELF_MACHINES: Record<number, string> = { 62: "x86_64", 183: "aarch64" };

function probeCriuArch(): CapabilityProbe {
  const found = locateCriu();
  if (!found) return { ok: false, detail: "no CRIU found (run 'u2cm doctor --fix')" };
  let head: Uint8Array;
  try {
    head = Deno.readFileSync(found.path).subarray(0, 20);
  } catch (e) {
    return { ok: false, detail: `${found.path}: ${(e as Error).message}` };
  }
  const machine = ELF_MACHINES[head[18] | (head[19] << 8)] ?? "not an ELF binary we know";
  return machine === Deno.build.arch
    ? { ok: true, detail: `${found.path} is built for ${machine}` }
    : {
      ok: false,
      detail: `${found.path} is built for ${machine}, this Deno runs as ${Deno.build.arch}`,
    };
}
