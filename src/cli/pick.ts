/**
 * `u2cm pick` (hidden): gather a migration's arguments the way `u2cm migrate` does — flags first,
 * prompts on a terminal for what is missing, a usage error naming the missing flags otherwise —
 * and print them as JSON without starting anything. Scripts and tests use it to check the
 * interactive path; `migrate` calls {@linkcode gatherMigrationArgs}.
 *
 * @module
 */
import type { Command } from "commander";
import {
  type Config,
  ConfigError,
  DEFAULT_CONFIG_PATH,
  defaultConfig,
  loadConfig,
} from "../ops/config.ts";
import { CliError, ExitCode } from "./errors.ts";
import { parsePositiveInt, requireProcess } from "./options.ts";
import { listProcessTrees } from "../ops/proctree.ts";
import { type ListedContainer, listRunningContainers } from "../container/resolve.ts";
import { runtimeNodes } from "../container/node.ts";
import {
  confirm,
  isInteractive,
  pickEngine,
  pickPeer,
  pickPolicy,
  pickWorkload,
  type Recommendation,
  requireOrPrompt,
} from "./prompts.ts";

/** Flags of a migration that may be prompted for. */
export interface MigrationArgFlags {
  /** `--pid`. */
  pid?: string;
  /** `--container` (a container given needs no workload prompt). */
  container?: string;
  /** `--to`. */
  to?: string;
  /** `--engine`. */
  engine?: string;
  /** `--policy`. */
  policy?: string;
  /** `--yes`: skip the confirmation. */
  yes?: boolean;
}

/** A migration's arguments, complete. */
export interface MigrationArgs {
  /** Root pid of the tree. */
  pid: number;
  /** Peer name. */
  to: string;
  /** Engine name. */
  engine: string;
  /** Policy name. */
  policy: string;
  /** The container picked at the prompt (its init is `pid`). */
  container?: { id: string; name: string; runtime: string };
}

/**
 * Complete a migration's arguments from flags, prompting on a terminal for the missing ones and
 * asking for confirmation when anything was prompted (unless `--yes`). Declining exits 130 with
 * nothing started. Without a terminal, missing flags are a usage error (exit 2).
 *
 * @param flags the command's flags
 * @param config the node configuration (peers, defaults)
 * @param recommend engine and policy recommendations shown in the prompts
 */
export async function gatherMigrationArgs(
  flags: MigrationArgFlags,
  config: Config,
  recommend: { engine: Recommendation; policy: Recommendation },
): Promise<MigrationArgs> {
  const interactive = isInteractive();
  let container: ListedContainer | undefined;
  const target = await requireOrPrompt({
    pid: {
      flag: "--pid <pid>",
      value: flags.pid ?? (flags.container !== undefined ? "1" : undefined),
      ask: async () => {
        const picked = await pickWorkload(
          listProcessTrees(),
          await listRunningContainers({ ...runtimeNodes(config.containers) }).catch(() => []),
        );
        container = picked.container;
        return String(picked.pid);
      },
    },
    to: { flag: "--to <peer>", value: flags.to, ask: () => pickPeer(config) },
  }, interactive);
  // Engine and policy default to the recommendation; they are asked for only in a session that
  // prompts anyway.
  const prompted = (flags.pid === undefined && flags.container === undefined) ||
    flags.to === undefined;
  const values = {
    ...target,
    engine: flags.engine ??
      (prompted ? await pickEngine(recommend.engine) : recommend.engine.value),
    policy: flags.policy ??
      (prompted ? await pickPolicy(recommend.policy) : recommend.policy.value),
  };
  const args: MigrationArgs = {
    pid: parsePositiveInt("--pid", values.pid),
    to: values.to,
    engine: values.engine,
    policy: values.policy,
    ...(container
      ? { container: { id: container.id, name: container.name, runtime: container.runtime } }
      : {}),
  };
  if (flags.container === undefined) requireProcess(args.pid);
  if (prompted && !flags.yes) {
    const what = flags.container !== undefined
      ? `container ${flags.container}`
      : container
      ? `container ${container.name} (${container.runtime})`
      : `pid ${args.pid}`;
    const ok = await confirm(
      `Migrate ${what} to ${args.to} with ${args.engine}/${args.policy}?`,
      true,
    );
    if (!ok) throw new CliError("not confirmed: nothing was started", ExitCode.Interrupted);
  }
  return args;
}

/** Add the hidden `pick` command to the program. */
export function register(program: Command): void {
  program
    .command("pick", { hidden: true })
    .description("gather migration arguments (prompting on a terminal) and print them as JSON")
    .option("--pid <pid>", "root pid of the process tree")
    .option("--to <peer>", "destination peer")
    .option("--engine <name>", "engine")
    .option("--policy <name>", "stop policy")
    .option("--yes", "do not ask for confirmation")
    .option("--config <file>", "node configuration", DEFAULT_CONFIG_PATH)
    .action(async (opts: MigrationArgFlags & { config: string }) => {
      const config = readConfigOrDefault(opts.config);
      const args = await gatherMigrationArgs(opts, config, {
        engine: { value: config.engine, reason: "config default" },
        policy: { value: config.policy, reason: "config default" },
      });
      console.log(JSON.stringify(args));
    });
}

/** The configuration at `file`; the defaults when the default path does not exist. */
export function readConfigOrDefault(file: string): Config {
  try {
    return loadConfig(file);
  } catch (e) {
    if (e instanceof ConfigError) {
      if (file === DEFAULT_CONFIG_PATH && e.problem.startsWith("configuration file not found")) {
        return defaultConfig();
      }
      throw new CliError(e.message, ExitCode.BadInput);
    }
    throw e;
  }
}
