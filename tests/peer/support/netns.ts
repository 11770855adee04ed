/**
 * Two network namespaces joined by a veth pair, optionally shaped with `tc tbf` in both
 * directions. Needs root and iproute2. Used by the netns tests and the peer benchmark.
 *
 * @module
 */

/** A namespace pair: A (source) at `addrA`, B (agent) at `addrB`. */
export interface NetnsPair {
  nsA: string;
  nsB: string;
  devA: string;
  devB: string;
  addrA: string;
  addrB: string;
  /** Prefix to run a command inside namespace `ns`. */
  exec(ns: string): string[];
  /** Shape both directions with tbf at `rate` (e.g. "100mbit"); replaces earlier shaping. */
  shape(rate: string): Promise<void>;
  /** Take A's end of the link down or up. */
  link(up: boolean): Promise<void>;
  destroy(): Promise<void>;
}

async function ip(args: string[], allowFail = false): Promise<void> {
  const out = await new Deno.Command("ip", { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success && !allowFail) {
    throw new Error(`ip ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

async function tc(ns: string, args: string[]): Promise<void> {
  const out = await new Deno.Command("tc", { args: ["-n", ns, ...args], stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`tc ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** Create the pair; `tag` keeps names unique (≤ 6 characters). */
export async function createNetnsPair(tag = String(Deno.pid % 100000)): Promise<NetnsPair> {
  const nsA = `u2cm-${tag}-a`, nsB = `u2cm-${tag}-b`;
  const devA = `u2a${tag}`, devB = `u2b${tag}`;
  const octet = 1 + (Number(tag.replace(/\D/g, "")) % 250);
  const addrA = `10.213.${octet}.1`, addrB = `10.213.${octet}.2`;
  await ip(["netns", "del", nsA], true);
  await ip(["netns", "del", nsB], true);
  await ip(["netns", "add", nsA]);
  await ip(["netns", "add", nsB]);
  try {
    await ip(["link", "add", devA, "type", "veth", "peer", "name", devB]);
    await ip(["link", "set", devA, "netns", nsA]);
    await ip(["link", "set", devB, "netns", nsB]);
    await ip(["-n", nsA, "addr", "add", `${addrA}/30`, "dev", devA]);
    await ip(["-n", nsB, "addr", "add", `${addrB}/30`, "dev", devB]);
    for (const [ns, dev] of [[nsA, devA], [nsB, devB]]) {
      await ip(["-n", ns, "link", "set", "lo", "up"]);
      await ip(["-n", ns, "link", "set", dev, "up"]);
    }
  } catch (e) {
    await ip(["netns", "del", nsA], true);
    await ip(["netns", "del", nsB], true);
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
    async shape(rate: string) {
      for (const [ns, dev] of [[nsA, devA], [nsB, devB]]) {
        await tc(ns, [
          "qdisc",
          "replace",
          "dev",
          dev,
          "root",
          "tbf",
          "rate",
          rate,
          "burst",
          "1mbit",
          "latency",
          "100ms",
        ]);
      }
    },
    async link(up: boolean) {
      await ip(["-n", nsA, "link", "set", devA, up ? "up" : "down"]);
    },
    async destroy() {
      await ip(["netns", "del", nsA], true);
      await ip(["netns", "del", nsB], true);
    },
  };
}

/** Why netns tests cannot run here, or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (Deno.uid() !== 0) return "needs root (ip netns, tc)";
  for (const cmd of ["ip", "tc"]) {
    const found = (Deno.env.get("PATH") ?? "").split(":").some((d) => {
      try {
        return Deno.statSync(`${d}/${cmd}`).isFile;
      } catch {
        return false;
      }
    });
    if (!found) return `needs '${cmd}' (Debian package iproute2)`;
  }
  return undefined;
}
