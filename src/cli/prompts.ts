/**
 * Interactive helpers for commands whose arguments may be asked for on a terminal (npm
 * @inquirer/prompts). Without a terminal nothing ever prompts: {@linkcode requireOrPrompt}
 * throws a usage error (exit 2) naming every missing flag. Ctrl-C in a prompt becomes exit 130;
 * gather every answer before starting work, so an interrupt leaves nothing half-started.
 *
 * @example
 * ```ts
 * import { pickProcessTree, requireOrPrompt } from "./prompts.ts";
 * const { pid } = await requireOrPrompt({
 *   pid: { flag: "--pid <pid>", value: undefined, ask: () => pickProcessTree().then(String) },
 * });
 * ```
 *
 * @module
 */
import { confirm as inquirerConfirm, select } from "@inquirer/prompts";
import { listPeers } from "../peer/peers.ts";
import type { Config } from "../ops/config.ts";
import { ENGINE_NAMES } from "../ops/config.ts";
import { listProcessTrees, type ProcessTree } from "../ops/proctree.ts";
import type { ListedContainer } from "../container/resolve.ts";
import { POLICY_NAMES } from "../policy/registry.ts";
import { CliError, ExitCode } from "./errors.ts";

/** Whether prompts may be shown: stdin and stdout are terminals and `U2CM_NO_PROMPT` is unset. */
export function isInteractive(): boolean {
  if (Deno.env.get("U2CM_NO_PROMPT")) return false;
  return Deno.stdin.isTerminal() && Deno.stdout.isTerminal();
}

/** One argument that may come from a flag or a prompt. */
export interface PromptableArg {
  /** The flag as shown in the error, e.g. `--pid <pid>`. */
  flag: string;
  /** The flag's value, when given. */
  value: string | undefined;
  /** Ask for the value on the terminal. */
  ask: () => Promise<string>;
}

/**
 * Return every argument's value: given flags as they are, missing ones asked for in order on a
 * terminal. Without a terminal, throws {@linkcode CliError} (exit 2) naming all missing flags.
 *
 * @param args the arguments by name
 * @param interactive whether prompting is allowed @default isInteractive()
 */
export async function requireOrPrompt<K extends string>(
  args: Record<K, PromptableArg>,
  interactive = isInteractive(),
): Promise<Record<K, string>> {
  const entries = Object.entries(args) as [K, PromptableArg][];
  const missing = entries.filter(([, a]) => a.value === undefined);
  if (missing.length > 0 && !interactive) {
    throw new CliError(
      `missing ${missing.map(([, a]) => a.flag).join(", ")} (no terminal to ask on: pass ` +
        `${missing.length > 1 ? "them as flags" : "it as a flag"})`,
      ExitCode.Usage,
    );
  }
  const out = {} as Record<K, string>;
  for (const [name, arg] of entries) out[name] = arg.value ?? await arg.ask();
  return out;
}

/** Run a prompt; Ctrl-C (ExitPromptError) and an aborted prompt become exit 130. */
export async function ask<T>(prompt: () => Promise<T>): Promise<T> {
  try {
    return await prompt();
  } catch (e) {
    const name = (e as Error)?.name;
    if (name === "ExitPromptError" || name === "AbortPromptError") {
      throw new CliError("interrupted: nothing was started", ExitCode.Interrupted);
    }
    throw e;
  }
}

/** Ask the user to pick one of the host's process trees (name, pid, RSS); returns the pid. */
export async function pickProcessTree(trees: ProcessTree[] = listProcessTrees()): Promise<number> {
  if (trees.length === 0) {
    throw new CliError("no process trees to migrate were found in /proc", ExitCode.NoTarget);
  }
  return await ask(() =>
    select({
      message: "Workload to migrate (process tree)",
      pageSize: 12,
      choices: trees.map((t) => ({
        name:
          `${t.name.padEnd(16)} pid ${String(t.pid).padEnd(8)} ${mib(t.rssBytes).padStart(10)}` +
          `  ${t.processes} proc${t.processes === 1 ? "" : "s"}`,
        value: t.pid,
        description: t.command,
      })),
    })
  );
}

/** What the workload prompt returns: a process tree's pid, or a container. */
export type PickedWorkload = { pid: number; container?: undefined } | {
  pid: number;
  container: ListedContainer;
};

/**
 * Ask for the workload among the running containers (podman, runc; listed first) and the process
 * trees.
 */
export async function pickWorkload(
  trees: ProcessTree[] = listProcessTrees(),
  containers: ListedContainer[] = [],
): Promise<PickedWorkload> {
  if (trees.length === 0 && containers.length === 0) {
    throw new CliError("no containers or process trees to migrate were found", ExitCode.NoTarget);
  }
  const picked = await ask(() =>
    select<string>({
      message: "Workload to migrate (container or process tree)",
      pageSize: 12,
      choices: [
        ...containers.map((c, i) => ({
          name: `${c.name.padEnd(16)} ${c.runtime} container ${c.id.slice(0, 12)}  pid ${c.pid}`,
          value: `c${i}`,
          description: c.image,
        })),
        ...trees.map((t) => ({
          name:
            `${t.name.padEnd(16)} pid ${String(t.pid).padEnd(8)} ${mib(t.rssBytes).padStart(10)}` +
            `  ${t.processes} proc${t.processes === 1 ? "" : "s"}`,
          value: `p${t.pid}`,
          description: t.command,
        })),
      ],
    })
  );
  if (picked.startsWith("c")) {
    const container = containers[Number(picked.slice(1))];
    return { pid: container.pid, container };
  }
  return { pid: Number(picked.slice(1)) };
}

/** Ask for a peer among the configuration's and the pinned ones (state dir); returns its name. */
export async function pickPeer(config: Pick<Config, "peers" | "stateDir">): Promise<string> {
  const peers = new Map<string, string>();
  for (const p of config.peers) peers.set(p.name, p.address);
  try {
    for (const p of listPeers(config.stateDir)) peers.set(p.name, p.address);
  } catch { /* an unreadable peers file: the configured peers still count */ }
  if (peers.size === 0) {
    throw new CliError(
      "no peers known: pin one with 'u2cm peer add NAME HOST:PORT PUBKEY' or list it in the config",
      ExitCode.Usage,
    );
  }
  return await ask(() =>
    select({
      message: "Destination peer",
      choices: [...peers].map(([name, address]) => ({ name: `${name}  ${address}`, value: name })),
    })
  );
}

/** A recommended choice and why (from doctor, the predictor or the config). */
export interface Recommendation {
  /** The recommended value. */
  value: string;
  /** Why, in a few words. */
  reason: string;
}

/** Ask for an engine, the recommended one first and preselected. */
export async function pickEngine(
  recommendation: Recommendation,
  engines: readonly string[] = ENGINE_NAMES,
): Promise<string> {
  return await pickWithRecommendation("Migration engine", engines, recommendation);
}

/** Ask for a stop policy, the recommended one first and preselected. */
export async function pickPolicy(
  recommendation: Recommendation,
  policies: readonly string[] = POLICY_NAMES.filter((p) => p !== "fixed-K" && p !== "oracle"),
): Promise<string> {
  return await pickWithRecommendation("Stop policy", policies, recommendation);
}

/** Ask a yes/no question. */
export async function confirm(message: string, defaultValue = false): Promise<boolean> {
  return await ask(() => inquirerConfirm({ message, default: defaultValue }));
}

async function pickWithRecommendation(
  message: string,
  options: readonly string[],
  rec: Recommendation,
): Promise<string> {
  const ordered = [rec.value, ...options.filter((o) => o !== rec.value)];
  return await ask(() =>
    select({
      message,
      default: rec.value,
      choices: ordered.map((o) => ({
        name: o === rec.value ? `${o}  (recommended: ${rec.reason})` : o,
        value: o,
      })),
    })
  );
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}
