/**
 * The container tests' two-node setup: two podman nodes on one machine (tests/support/podman.ts)
 * with a `u2cm agent` for node b (its environment is b's podman, its restored containers under
 * b's cgroup parent), a's state directory pinning it as peer "b", and `u2cm migrate` run as a real
 * command with a's environment. Optionally b's agent runs inside a network namespace (`prefix`,
 * `host`) and with a CRIU of its own (`criu`: CRIU 4.2 for TCP). Also the memcheck container the
 * tests and the benchmark start.
 *
 * @example
 * ```ts
 * const t = await podmanAgents();
 * try {
 *   await startMemcheckContainer(t.a, "mc", ["--mib", "32"]);
 *   const r = await t.migrate(["--container", "mc"]);
 * } finally {
 *   await t.cleanup();
 * }
 * ```
 *
 * @module
 */
import { makePodmanPair, type PodmanTestNode, waitLog } from "./podman.ts";
import { memcheckImage } from "./container_images.ts";
import { makeNodes, type TestAgent, type TestNodes, u2cm } from "../engine/support/agents.ts";

/** A command's outcome. */
export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of {@linkcode podmanAgents}. */
export interface PodmanAgentsOptions {
  /** The CRIU both nodes' runtimes run, and the environment that makes u2cm use it. */
  criu?: { path: string; env: Record<string, string> };
  /** b's runc fails every restore. @default false */
  failRestoreB?: boolean;
  /** b's runc flips a byte of the pages it restores from. @default false */
  corruptRestoreB?: boolean;
  /** Command prefix b's agent runs under (a network namespace). @default none */
  prefixB?: string[];
  /** Address b's agent listens on. @default "127.0.0.1" */
  hostB?: string;
  /** Command prefix `migrate` runs under. @default none */
  prefixA?: string[];
}

/** Two podman nodes, b's agent, and `migrate` from a. */
export interface PodmanAgents {
  /** The source node. */
  a: PodmanTestNode;
  /** The destination node. */
  b: PodmanTestNode;
  /** The u2cm state directories. */
  nodes: TestNodes;
  /** b's agent. */
  agent: TestAgent;
  /** `u2cm migrate ARGS --to b --format json` from a (handshake timeouts retried; `env` added). */
  migrate(args: string[], env?: Record<string, string>): Promise<Ran>;
  /** Stop the agent, remove both nodes and state directories. */
  cleanup(): Promise<void>;
}

/** Set up two podman nodes and b's agent. */
export async function podmanAgents(options: PodmanAgentsOptions = {}): Promise<PodmanAgents> {
  const { criu, prefixB = [], hostB = "127.0.0.1", prefixA = [] } = options;
  const pair = makePodmanPair(criu?.path, options);
  const nodes = await makeNodes();
  let agent: TestAgent;
  try {
    agent = await nodes.startB(0, prefixB, hostB, {
      ...pair.b.env,
      ...criu?.env,
      U2CM_CGROUP_PARENT: pair.b.cgroupParent,
    });
  } catch (e) {
    nodes.cleanup();
    await pair.cleanup();
    throw e;
  }
  return {
    a: pair.a,
    b: pair.b,
    nodes,
    agent,
    migrate: (args, env = {}) =>
      retryHandshake(() =>
        u2cm(
          ["migrate", ...args, "--to", "b", "--format", "json", "--state-dir", nodes.a],
          { ...pair.a.env, ...criu?.env, ...env },
          prefixA,
        )
      ),
    cleanup: async () => {
      await agent.stop();
      nodes.cleanup();
      await pair.cleanup();
    },
  };
}

/**
 * Run `run` again (twice at most) when the peer handshake timed out before anything started
 * (exit 7, "authentication failed": the agent allows 10 s for it, which a box at load 16+ on two
 * cores can miss; tests/peer/auth_test.ts shows the same). Any other outcome is returned as is.
 */
export async function retryHandshake(run: () => Promise<Ran>): Promise<Ran> {
  let r = await run();
  for (let i = 0; i < 2 && r.code === 7 && /authentication failed/.test(r.stderr); i++) {
    console.error(`peer handshake timed out (loaded box); retrying: ${r.stderr.trim()}`);
    r = await run();
  }
  return r;
}

/** Options of {@linkcode startMemcheckContainer}. */
export interface MemcheckContainerOptions {
  /** Wait for this tick before returning. @default 10 */
  tick?: number;
  /** Extra `podman run` arguments (mounts, …). @default [] */
  runArgs?: string[];
  /** How long to wait for the tick. @default 15000 */
  timeoutMs?: number;
  /** `--network`. @default "none" */
  network?: string;
}

/**
 * Start the memcheck image as container `name` on `node` (`--network none` unless told, the
 * node's cgroup parent) with memcheck arguments `args`; resolves once it printed tick `tick`.
 */
export async function startMemcheckContainer(
  node: PodmanTestNode,
  name: string,
  args: string[],
  options: MemcheckContainerOptions = {},
): Promise<void> {
  const { tick = 10, runArgs = [], timeoutMs = 15_000, network = "none" } = options;
  const img = await memcheckImage(node);
  await node.run([
    "run",
    "-d",
    "--name",
    name,
    "--network",
    network,
    "--cgroup-parent",
    node.cgroupParent,
    ...runArgs,
    img.name,
    "/bin/memcheck",
    ...args,
  ]);
  await waitLog(node, name, new RegExp(`^tick ${tick} `), { timeoutMs });
}
