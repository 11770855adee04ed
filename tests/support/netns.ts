/**
 * Network namespaces for tests and benchmarks "across the network" on one machine: two namespaces
 * joined by a veth pair (optionally shaped with `tc tbf`), or two namespaces on a host bridge with
 * a movable service address. Commands enter a namespace with `nsenter --net` or `ip netns exec`
 * only, so processes keep the host's mount namespace (CRIU then has no external mounts to be told
 * about). Needs root and iproute2.
 *
 * Every name carries this process's id, so the same test run twice at once (two worktrees, two CI
 * jobs) never deletes or reuses the other run's namespaces, links or addresses.
 *
 * @example
 * ```ts
 * const net = linkedNamespaces("cz", "100mbit", 81);
 * try {
 *   sh([...net.enter("b"), "ip", "addr"]);
 * } finally {
 *   net.cleanup();
 * }
 * ```
 *
 * @module
 */

/** Run a command; throw with its stderr when it fails. */
export function sh(cmd: string[]): string {
  const out = new Deno.Command(cmd[0], { args: cmd.slice(1), stdout: "piped", stderr: "piped" })
    .outputSync();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  if (!out.success) throw new Error(`${cmd.join(" ")} failed: ${text(out.stderr).trim()}`);
  return text(out.stdout);
}

function shQuiet(cmd: string[]): void {
  try {
    sh(cmd);
  } catch { /* not there */ }
}

/** A per-process suffix (3 base-36 digits) that keeps concurrent runs apart. */
const RUN = (Deno.pid % 46656).toString(36).padStart(3, "0");

/** The third address octet of this run, so host-side addresses of concurrent runs differ too. */
const RUN_OCTET = 1 + (Deno.pid % 250);

/** Why netns tests cannot run here, or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (Deno.uid() !== 0) return "needs root (ip netns, tc)";
  for (const cmd of ["ip", "tc", "nsenter"]) {
    const found = (Deno.env.get("PATH") ?? "").split(":").some((d) => {
      try {
        return Deno.statSync(`${d}/${cmd}`).isFile;
      } catch {
        return false;
      }
    });
    if (!found) {
      return `needs '${cmd}' (Debian package ${cmd === "nsenter" ? "util-linux" : "iproute2"})`;
    }
  }
  return undefined;
}

/** A veth-linked namespace pair: A (source) at `addrA`, B (agent) at `addrB`. */
export interface NetnsPair {
  nsA: string;
  nsB: string;
  devA: string;
  devB: string;
  addrA: string;
  addrB: string;
  /** Prefix to run a command inside namespace `ns` (`ip netns exec`). */
  exec(ns: string): string[];
  /** Shape both directions with tbf at `rate` (e.g. "100mbit"); replaces earlier shaping. */
  shape(rate: string): Promise<void>;
  /** Take A's end of the link down or up. */
  link(up: boolean): Promise<void>;
  destroy(): Promise<void>;
}

/** Options of {@linkcode createNetnsPair}. */
export interface NetnsPairOptions {
  /** Second address octet: the pair lives in 10.`subnet`.x.0/24. Default 213. */
  subnet?: number;
  /** tbf burst and latency used by `shape`. Default `1mbit`, `100ms`. */
  burst?: string;
  latency?: string;
}

function tbf(ns: string, dev: string, rate: string, burst: string, latency: string): void {
  sh([
    "tc",
    "-n",
    ns,
    "qdisc",
    "replace",
    "dev",
    dev,
    "root",
    "tbf",
    "rate",
    rate,
    "burst",
    burst,
    "latency",
    latency,
  ]);
}

function pairSync(tag: string, opts: NetnsPairOptions = {}): NetnsPair {
  const t = `${tag}${RUN}`;
  const nsA = `u2cm-${t}-a`, nsB = `u2cm-${t}-b`;
  const devA = `u2${t}a`.slice(0, 15), devB = `u2${t}b`.slice(0, 15);
  const net = `10.${opts.subnet ?? 213}.${RUN_OCTET}`;
  const addrA = `${net}.1`, addrB = `${net}.2`;
  const burst = opts.burst ?? "1mbit", latency = opts.latency ?? "100ms";
  const destroySync = () => {
    shQuiet(["ip", "netns", "del", nsA]);
    shQuiet(["ip", "netns", "del", nsB]);
  };
  destroySync();
  try {
    sh(["ip", "netns", "add", nsA]);
    sh(["ip", "netns", "add", nsB]);
    sh(["ip", "link", "add", devA, "type", "veth", "peer", "name", devB]);
    sh(["ip", "link", "set", devA, "netns", nsA]);
    sh(["ip", "link", "set", devB, "netns", nsB]);
    for (const [ns, dev, addr] of [[nsA, devA, addrA], [nsB, devB, addrB]]) {
      sh(["ip", "-n", ns, "addr", "add", `${addr}/24`, "dev", dev]);
      sh(["ip", "-n", ns, "link", "set", "lo", "up"]);
      sh(["ip", "-n", ns, "link", "set", dev, "up"]);
    }
  } catch (e) {
    destroySync();
    throw e;
  }
  return {
    nsA,
    nsB,
    devA,
    devB,
    addrA,
    addrB,
    exec: (ns) => ["ip", "netns", "exec", ns],
    shape(rate) {
      tbf(nsA, devA, rate, burst, latency);
      tbf(nsB, devB, rate, burst, latency);
      return Promise.resolve();
    },
    link(up) {
      sh(["ip", "-n", nsA, "link", "set", devA, up ? "up" : "down"]);
      return Promise.resolve();
    },
    destroy() {
      destroySync();
      return Promise.resolve();
    },
  };
}

/**
 * Create a veth-linked pair `u2cm-<tag><run>-a|b`; `tag` names the test (≤ 6 characters), the
 * run suffix keeps concurrent runs apart.
 */
export function createNetnsPair(tag = "p", opts: NetnsPairOptions = {}): Promise<NetnsPair> {
  return Promise.resolve(pairSync(tag, opts));
}

/** Two linked namespaces, the synchronous face used by the engine tests and benchmarks. */
export interface LinkedNamespaces {
  /** Namespace names (under /var/run/netns). */
  a: string;
  b: string;
  /** Addresses of each end. */
  ipA: string;
  ipB: string;
  /** Prefix a command with this to run it in namespace `a` or `b`. */
  enter(ns: "a" | "b"): string[];
  /** Remove both namespaces. */
  cleanup(): void;
}

/**
 * Create namespaces linked by veth, each end shaped to `rate` (a tc rate such as `1gbit` or
 * `100mbit`) with 256 KiB bursts and 50 ms tbf queues, in 10.`subnet`.x.0/24.
 */
export function linkedNamespaces(tag: string, rate: string, subnet = 77): LinkedNamespaces {
  const pair = pairSync(tag, { subnet });
  try {
    tbf(pair.nsA, pair.devA, rate, "256kb", "50ms");
    tbf(pair.nsB, pair.devB, rate, "256kb", "50ms");
  } catch (e) {
    void pair.destroy();
    throw e;
  }
  return {
    a: pair.nsA,
    b: pair.nsB,
    ipA: pair.addrA,
    ipB: pair.addrB,
    enter: (ns) => ["nsenter", `--net=/var/run/netns/${ns === "a" ? pair.nsA : pair.nsB}`, "--"],
    cleanup: () => void pair.destroy(),
  };
}

/** Two namespaces on a host bridge, with a movable service address (a "VIP"). */
export interface BridgedNamespaces extends LinkedNamespaces {
  /** The service address clients in the host namespace use. */
  vip: string;
  /** Move the service address to namespace `to` (from the other one). */
  moveVip(to: "a" | "b"): void;
}

/**
 * Namespaces `u2cm-<tag><run>-a|b`, each with a veth on a host bridge (host end
 * `10.<subnet>.x.254`), and the service address `10.<subnet>.x.100` on `a`.
 */
export function bridgedNamespaces(tag: string, subnet: number): BridgedNamespaces {
  const t = `${tag}${RUN}`;
  const a = `u2cm-${t}-a`, b = `u2cm-${t}-b`, br = `u2br${t}`.slice(0, 15);
  const net = `10.${subnet}.${RUN_OCTET}`;
  const ipA = `${net}.1`, ipB = `${net}.2`, vip = `${net}.100`;
  const cleanup = () => {
    shQuiet(["ip", "netns", "del", a]);
    shQuiet(["ip", "netns", "del", b]);
    shQuiet(["ip", "link", "del", br]);
  };
  cleanup();
  const dev = (ns: string) => `e${t}${ns === a ? "a" : "b"}`.slice(0, 15);
  try {
    sh(["ip", "link", "add", br, "type", "bridge"]);
    sh(["ip", "addr", "add", `${net}.254/24`, "dev", br]);
    sh(["ip", "link", "set", br, "up"]);
    for (const [ns, ip] of [[a, ipA], [b, ipB]]) {
      sh(["ip", "netns", "add", ns]);
      const host = `h${t}${ns === a ? "a" : "b"}`.slice(0, 15);
      sh(["ip", "link", "add", host, "type", "veth", "peer", "name", dev(ns)]);
      sh(["ip", "link", "set", dev(ns), "netns", ns]);
      sh(["ip", "link", "set", host, "master", br]);
      sh(["ip", "link", "set", host, "up"]);
      sh(["ip", "-n", ns, "addr", "add", `${ip}/24`, "dev", dev(ns)]);
      sh(["ip", "-n", ns, "link", "set", dev(ns), "up"]);
      sh(["ip", "-n", ns, "link", "set", "lo", "up"]);
    }
    sh(["ip", "-n", a, "addr", "add", `${vip}/32`, "dev", dev(a)]);
  } catch (e) {
    cleanup();
    throw e;
  }
  let at: "a" | "b" = "a";
  return {
    a,
    b,
    ipA,
    ipB,
    vip,
    enter: (ns) => ["nsenter", `--net=/var/run/netns/${ns === "a" ? a : b}`, "--"],
    moveVip(to) {
      if (to === at) return;
      const from = at === "a" ? a : b, dest = to === "a" ? a : b;
      sh(["ip", "-n", from, "addr", "del", `${vip}/32`, "dev", dev(from)]);
      sh(["ip", "-n", dest, "addr", "add", `${vip}/32`, "dev", dev(dest)]);
      shQuiet(["ip", "neigh", "flush", "dev", br]);
      at = to;
    },
    cleanup,
  };
}
