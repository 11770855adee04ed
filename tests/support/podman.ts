/**
 * Two (or more) podman "nodes" on one machine, for container migration tests: each node has its
 * own storage.conf (graphroot, runroot) and containers.conf (tmp, static and volume dirs, network
 * config dir, image copy tmp dir, file locks, file events, cgroupfs, default ulimits) and a runc
 * wrapper with a runc `--root` of its own, registered under `[engine.runtimes]` and first on the
 * node's PATH beside u2cm's private CRIU as `criu`. Every podman call of a node runs with the
 * node's environment ({@linkcode PodmanTestNode.env}) — the environment a `u2cm agent` or
 * `u2cm migrate` for that node is started with.
 *
 * @module
 */
import { requireCommand, requireRoot } from "./env.ts";
import { requireCriu } from "../../src/criu/locate.ts";
import type { PodmanNode } from "../../src/container/types.ts";
import { podman } from "../../src/container/podman.ts";
import { cacheDir } from "../../src/native/build.ts";
import { runU2cm } from "./cli.ts";

/** A podman node for tests. */
export interface PodmanTestNode extends PodmanNode {
  /** Its tag (a, b, …). */
  tag: string;
  /** Its directory (all of its state lives below it). */
  dir: string;
  /** The cgroup parent its containers run under (distinct per node on one host). */
  cgroupParent: string;
  /** runc's state dir for this node. */
  runcRoot: string;
  /** Run podman on this node; resolves with stdout. */
  run(args: string[]): Promise<string>;
  /** Remove every container, image and volume of the node, then its directory. */
  cleanup(): Promise<void>;
}

/** Options of {@linkcode makePodmanNode}. */
export interface PodmanNodeOptions {
  /** Node tag, used in the cgroup parent (`/u2cm-test-<tag>-<pid>`). */
  tag: string;
  /** Parent directory. @default a fresh temp dir */
  root?: string;
  /** The CRIU binary the node's runtime runs as `criu`. @default u2cm's CRIU */
  criu?: string;
  /** Fault injection: the node's runc fails every `restore` (checks and runs still work). */
  failRestore?: boolean;
  /**
   * Fault injection: before every `restore` the node's runc flips one byte in the middle of the
   * largest pages image it restores from (after u2cm checked the images, before CRIU reads them).
   */
  corruptRestore?: boolean;
}

/** Create a podman node (needs root, podman, runc and a CRIU). */
export function makePodmanNode(options: PodmanNodeOptions): PodmanTestNode {
  requireRoot("podman containers");
  requireCommand("podman");
  const runcBin = requireCommand("runc");
  const criu = options.criu ?? requireCriu().path;
  const { tag } = options;
  const root = options.root ?? Deno.makeTempDirSync({ prefix: `u2cm-podman-${tag}-` });
  const dir = `${root}/${tag}`;
  for (const d of ["graph", "run", "tmp", "static", "volumes", "net", "imgtmp", "bin", "runc"]) {
    Deno.mkdirSync(`${dir}/${d}`, { recursive: true });
  }
  const storageConf = `${dir}/storage.conf`;
  const containersConf = `${dir}/containers.conf`;
  Deno.writeTextFileSync(
    storageConf,
    `[storage]\ndriver = "overlay"\ngraphroot = "${dir}/graph"\nrunroot = "${dir}/run"\n`,
  );
  const wrapper = `${dir}/bin/runc`;
  const fail = options.failRestore
    ? `for a in "$@"; do [ "$a" = restore ] && { echo "injected restore failure" >&2; exit 1; }; done\n`
    : "";
  const corrupt = options.corruptRestore
    ? [
      'img=""; prev=""',
      'for a in "$@"; do [ "$prev" = --image-path ] && img="$a"; prev="$a"; done',
      'if [ -n "$img" ]; then f=$(ls -S "$img"/pages-*.img | head -n 1); s=$(stat -L -c %s "$f")',
      '  printf "\\377" | dd of="$f" bs=1 seek=$((s / 2)) conv=notrunc status=none; fi',
      "",
    ].join("\n")
    : "";
  Deno.writeTextFileSync(
    wrapper,
    `#!/bin/sh\n${fail}${corrupt}exec ${runcBin} --root ${dir}/runc "$@"\n`,
  );
  Deno.chmodSync(wrapper, 0o755);
  Deno.symlinkSync(criu, `${dir}/bin/criu`);
  Deno.writeTextFileSync(
    containersConf,
    [
      "[containers]",
      'default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]',
      "[network]",
      `network_config_dir = "${dir}/net"`,
      "[engine]",
      `tmp_dir = "${dir}/tmp"`,
      `static_dir = "${dir}/static"`,
      `volume_path = "${dir}/volumes"`,
      `image_copy_tmp_dir = "${dir}/imgtmp"`,
      'lock_type = "file"',
      'events_logger = "file"',
      `events_logfile_path = "${dir}/events.log"`,
      'cgroup_manager = "cgroupfs"',
      'runtime = "u2cmrunc"',
      "[engine.runtimes]",
      `u2cmrunc = ["${wrapper}"]`,
      "",
    ].join("\n"),
  );
  const env = {
    CONTAINERS_STORAGE_CONF: storageConf,
    CONTAINERS_CONF: containersConf,
    PATH: `${dir}/bin:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`,
    TMPDIR: `${dir}/imgtmp`,
  };
  const node: PodmanTestNode = {
    bin: "podman",
    env,
    tag,
    dir,
    cgroupParent: `/u2cm-test-${tag}-${Deno.pid}`,
    runcRoot: `${dir}/runc`,
    run: (args) => podman(node, args),
    cleanup: async () => {
      await podman(node, ["rm", "--all", "--force", "--time", "0"]).catch(() => {});
      await podman(node, ["system", "reset", "--force"]).catch(() => {});
      unmountBelow(dir);
      removeCgroups(node.cgroupParent);
      await Deno.remove(options.root ? dir : root, { recursive: true }).catch(() => {});
    },
  };
  return node;
}

/** Create nodes `a` and `b` under one temp dir (`criu`: the CRIU both run). */
export function makePodmanPair(
  criu?: string,
  options: { failRestoreB?: boolean; corruptRestoreB?: boolean } = {},
): {
  a: PodmanTestNode;
  b: PodmanTestNode;
  cleanup(): Promise<void>;
} {
  const root = Deno.makeTempDirSync({ prefix: "u2cm-podman-" });
  const a = makePodmanNode({ tag: "a", root, criu });
  const b = makePodmanNode({
    tag: "b",
    root,
    criu,
    failRestore: options.failRestoreB,
    corruptRestore: options.corruptRestoreB,
  });
  return {
    a,
    b,
    cleanup: async () => {
      await a.cleanup();
      await b.cleanup();
      await Deno.remove(root, { recursive: true }).catch(() => {});
    },
  };
}

/** Remove the (empty) cgroup directories named `parent` in every cgroup v1/v2 hierarchy. */
function removeCgroups(parent: string): void {
  let controllers: string[] = [];
  try {
    controllers = [...Deno.readDirSync("/sys/fs/cgroup")].map((e) => e.name);
  } catch {
    return;
  }
  for (const c of controllers) {
    const base = `/sys/fs/cgroup/${c}${parent}`;
    new Deno.Command("find", {
      args: [base, "-depth", "-type", "d", "-exec", "rmdir", "{}", ";"],
      stderr: "null",
    })
      .outputSync();
  }
}

/**
 * CRIU 4.2 (TCP sockets on Linux ≥ 6.16), provisioned by `u2cm doctor --fix --criu-suite sid` into
 * its own prefix (`<cache>/criu-sid`, as the engine's redis test does); returns its path and the
 * environment that makes u2cm use it.
 */
export async function requireCriu42(): Promise<{ path: string; env: Record<string, string> }> {
  const prefix = `${cacheDir()}/criu-sid`;
  const env = { U2CM_CRIU_PREFIX: prefix };
  const r = await runU2cm(["doctor", "--fix", "--criu-suite", "sid", "--format", "json"], env);
  if (r.code !== 0) throw new Error(`provisioning CRIU 4.2 failed: ${r.stderr}`);
  const version = JSON.parse(r.stdout).criu.version;
  if (!/^4\.([2-9]|\d\d)/.test(version)) throw new Error(`CRIU ${version} is not 4.2+`);
  return { path: `${prefix}/usr/sbin/criu`, env };
}

function unmountBelow(dir: string): void {
  const mounts = Deno.readTextFileSync("/proc/self/mounts").split("\n")
    .map((l) => l.split(" ")[1] ?? "")
    .filter((m) => m.startsWith(`${dir}/`))
    .sort((x, y) => y.length - x.length);
  for (const m of mounts) new Deno.Command("umount", { args: ["-l", m] }).outputSync();
}

/** Wait until the container's log has a line matching `re`; resolves with that line. */
export async function waitLog(
  node: PodmanTestNode,
  name: string,
  re: RegExp,
  options: { timeoutMs?: number; after?: number } = {},
): Promise<string> {
  const { timeoutMs = 15_000, after = 0 } = options;
  const deadline = Date.now() + timeoutMs;
  let lines: string[] = [];
  while (Date.now() < deadline) {
    lines = (await node.run(["logs", name]).catch(() => "")).split("\n");
    const hit = lines.slice(after).find((l) => re.test(l));
    if (hit) return hit;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no log line matching ${re} from ${name}; last: ${lines.slice(-3).join(" | ")}`);
}

/** Number of lines in the container's log so far. */
export async function logLength(node: PodmanTestNode, name: string): Promise<number> {
  return (await node.run(["logs", name])).split("\n").length;
}
