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
