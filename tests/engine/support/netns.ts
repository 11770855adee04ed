/**
 * Two network namespaces joined by a veth pair with a token-bucket-shaped link, for migrations
 * "across the network" on one machine. Commands enter a namespace with `nsenter --net` only, so
 * processes keep the host's mount namespace (CRIU then has no external mounts to be told about).
 *
 * @module
 */

/** Two linked namespaces. */
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

/** Run a command; throw with its stderr when it fails. */
export function sh(cmd: string[]): string {
  const out = new Deno.Command(cmd[0], { args: cmd.slice(1), stdout: "piped", stderr: "piped" })
    .outputSync();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  if (!out.success) throw new Error(`${cmd.join(" ")} failed: ${text(out.stderr).trim()}`);
  return text(out.stdout);
}

/**
 * Create namespaces `u2cm-<tag>-a` and `-b` linked by veth, each end shaped to `rate` (a tc rate
 * such as `1gbit` or `100mbit`), with `delayMs`-sized tbf queues.
 */
export function linkedNamespaces(tag: string, rate: string, subnet = 77): LinkedNamespaces {
  const a = `u2cm-${tag}-a`, b = `u2cm-${tag}-b`;
  const va = `u2${tag}a`.slice(0, 15), vb = `u2${tag}b`.slice(0, 15);
  const ipA = `10.${subnet}.0.1`, ipB = `10.${subnet}.0.2`;
  for (const ns of [a, b]) {
    try {
      sh(["ip", "netns", "del", ns]);
    } catch { /* not there */ }
  }
  sh(["ip", "netns", "add", a]);
  sh(["ip", "netns", "add", b]);
  sh(["ip", "link", "add", va, "type", "veth", "peer", "name", vb]);
  sh(["ip", "link", "set", va, "netns", a]);
  sh(["ip", "link", "set", vb, "netns", b]);
  for (const [ns, dev, ip] of [[a, va, ipA], [b, vb, ipB]]) {
    sh(["ip", "-n", ns, "addr", "add", `${ip}/24`, "dev", dev]);
    sh(["ip", "-n", ns, "link", "set", dev, "up"]);
    sh(["ip", "-n", ns, "link", "set", "lo", "up"]);
    sh([
      "ip",
      "netns",
      "exec",
      ns,
      "tc",
      "qdisc",
      "add",
      "dev",
      dev,
      "root",
      "tbf",
      "rate",
      rate,
      "burst",
      "256kb",
      "latency",
      "50ms",
    ]);
  }
  return {
    a,
    b,
    ipA,
    ipB,
    enter: (ns) => ["nsenter", `--net=/var/run/netns/${ns === "a" ? a : b}`, "--"],
    cleanup() {
      for (const ns of [a, b]) {
        try {
          sh(["ip", "netns", "del", ns]);
        } catch { /* already gone */ }
      }
    },
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
 * Namespaces `u2cm-<tag>-a|b`, each with a veth on host bridge `u2br<tag>` (host end
 * `10.<subnet>.0.254`), and service address `10.<subnet>.0.100` on `a`.
 */
export function bridgedNamespaces(tag: string, subnet: number): BridgedNamespaces {
  const a = `u2cm-${tag}-a`, b = `u2cm-${tag}-b`, br = `u2br${tag}`.slice(0, 15);
  const ipA = `10.${subnet}.0.1`, ipB = `10.${subnet}.0.2`, vip = `10.${subnet}.0.100`;
  const cleanup = () => {
    for (const ns of [a, b]) {
      try {
        sh(["ip", "netns", "del", ns]);
      } catch { /* not there */ }
    }
    try {
      sh(["ip", "link", "del", br]);
    } catch { /* not there */ }
  };
  cleanup();
  sh(["ip", "link", "add", br, "type", "bridge"]);
  sh(["ip", "addr", "add", `10.${subnet}.0.254/24`, "dev", br]);
  sh(["ip", "link", "set", br, "up"]);
  const dev = (ns: string) => `e${tag}${ns === a ? "a" : "b"}`.slice(0, 15);
  for (const [ns, ip] of [[a, ipA], [b, ipB]]) {
    sh(["ip", "netns", "add", ns]);
    const host = `h${tag}${ns === a ? "a" : "b"}`.slice(0, 15);
    sh(["ip", "link", "add", host, "type", "veth", "peer", "name", dev(ns)]);
    sh(["ip", "link", "set", dev(ns), "netns", ns]);
    sh(["ip", "link", "set", host, "master", br]);
    sh(["ip", "link", "set", host, "up"]);
    sh(["ip", "-n", ns, "addr", "add", `${ip}/24`, "dev", dev(ns)]);
    sh(["ip", "-n", ns, "link", "set", dev(ns), "up"]);
    sh(["ip", "-n", ns, "link", "set", "lo", "up"]);
  }
  sh(["ip", "-n", a, "addr", "add", `${vip}/32`, "dev", dev(a)]);
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
      try {
        sh(["ip", "neigh", "flush", "dev", br]);
      } catch { /* nothing cached */ }
      at = to;
    },
    cleanup,
  };
}
