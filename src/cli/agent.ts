/**
 * `u2cm agent`: the long-running daemon that receives migrations from pinned peers. It restores
 * them stopped and resumes them when their source commits (src/engine/destination.ts). At start
 * it keeps ready copies stopped for their sources, discards half-done restores, and recovers
 * migrations this node was the source of.
 *
 * @module
 */
import type { Command } from "commander";
import { parseHostPort } from "../peer/address.ts";
import { startAgent } from "../peer/agent.ts";
import type { ResolveHandler, RestoreHandler } from "../peer/mod.ts";
import { type Config, ConfigError, loadConfig } from "../ops/config.ts";
import { startAgentOps } from "../ops/agent_ops.ts";
import { Destination } from "../engine/destination.ts";
import { restoreMigration } from "../engine/restore.ts";
import { lazyCheckReport } from "../engine/lazy_check.ts";
import { containerAgentHooks } from "../container/agent_hooks.ts";
import { runtimeNodes } from "../container/node.ts";
import { recoverNode } from "./recover.ts";
import { ensureKerndatCache } from "../criu/kerndat.ts";
import { createLogger, LOG_LEVELS } from "../peer/log.ts";
import { CliError, ExitCode } from "./errors.ts";
import { parseChoice, parseNumberInRange } from "./options.ts";
import { defaultStateDir, peerCliError } from "./peer_errors.ts";

/** Add `agent` to the program. */
export function register(program: Command): void {
  program
    .command("agent")
    .description("run the peer agent: receive migrations from pinned peers (logs JSON on stderr)")
    .option("--listen <addr>", "HOST:PORT to listen on (port 0 = any free port)", "0.0.0.0:7070")
    .option("--state-dir <dir>", "state directory ($U2CM_STATE_DIR)", defaultStateDir())
    .option("--transport <t>", "ws|quic", "ws")
    .option("--log-level <level>", LOG_LEVELS.join("|"), "info")
    .option("--resume-timeout <s>", "seconds a dropped source may take to resume", "30")
    .option(
      "--memory-limit <mib>",
      "MiB of pages per migration kept in memory before spilling",
      "256",
    )
    .option("--max-migrations <n>", "migrations received at once", "8")
    .option(
      "--bulk-port <port>",
      "TCP port of the sealed bulk stream for page and file frames (0 = any free port, " +
        "announced to authenticated peers; 'off' = every frame over the WebSocket)",
      "0",
    )
    .option(
      "--bulk-advertise <port>",
      "bulk port announced to peers when another port forwards to --bulk-port " +
        "(NAT, port mapping); peers dial it on the host they reached the agent at",
    )
    .option(
      "--config <file>",
      "node configuration (as 'u2cm install' writes it): listen, bulk port, state dir, transport, " +
        "log level, limits, metrics port; flags given on the command line win",
    )
    .action(async (opts: AgentOptions, cmd: Command) =>
      await runAgent(withConfig(opts, (name) => cmd.getOptionValueSource(name) === "cli"))
    );
}

interface AgentOptions {
  config?: string;
  listen: string;
  stateDir: string;
  transport: string;
  logLevel: string;
  resumeTimeout: string;
  memoryLimit: string;
  maxMigrations: string;
  bulkPort: string;
  bulkAdvertise?: string;
}

/** The options with the config file's values where no flag was given; keeps the config. */
function withConfig(
  opts: AgentOptions,
  fromCli: (name: string) => boolean,
): AgentOptions & { loaded?: Config } {
  if (opts.config === undefined) return opts;
  let config: Config;
  try {
    config = loadConfig(opts.config);
  } catch (e) {
    if (e instanceof ConfigError) throw new CliError(e.message, ExitCode.BadInput);
    throw e;
  }
  const pick = (name: keyof AgentOptions, value: string) => fromCli(name) ? opts[name] : value;
  return {
    ...opts,
    listen: pick("listen", config.listen)!,
    stateDir: pick("stateDir", config.stateDir)!,
    transport: pick("transport", config.transport)!,
    bulkPort: pick(
      "bulkPort",
      config.bulkPort === undefined ? opts.bulkPort : String(config.bulkPort),
    )!,
    logLevel: pick("logLevel", config.logLevel)!,
    maxMigrations: pick("maxMigrations", String(config.limits.maxConcurrentMigrations))!,
    loaded: config,
  };
}

async function runAgent(opts: AgentOptions & { loaded?: Config }): Promise<void> {
  const transport = parseChoice("--transport", opts.transport, ["ws", "quic"] as const);
  const level = parseChoice("--log-level", opts.logLevel, LOG_LEVELS);
  if (!parseHostPort(opts.listen, true)) {
    throw new CliError(
      `--listen must be HOST:PORT (e.g. 0.0.0.0:7070), got '${opts.listen}'`,
      ExitCode.Usage,
    );
  }
  const resumeTimeoutMs = parseNumberInRange("--resume-timeout", opts.resumeTimeout, 0.1, 3600) *
    1000;
  const memoryLimitBytes = parseNumberInRange("--memory-limit", opts.memoryLimit, 1, 1 << 20) *
    2 ** 20;
  const maxMigrations = parseNumberInRange("--max-migrations", opts.maxMigrations, 1, 1024);
  const bulkPort = opts.bulkPort === "off"
    ? null
    : Math.floor(parseNumberInRange("--bulk-port", opts.bulkPort, 0, 65535));
  const bulkAdvertise = opts.bulkAdvertise === undefined
    ? undefined
    : parseNumberInRange("--bulk-advertise", opts.bulkAdvertise, 1, 65535);
  if (bulkAdvertise !== undefined && !Number.isInteger(bulkAdvertise)) {
    throw new CliError(
      `--bulk-advertise must be a port, got '${opts.bulkAdvertise}'`,
      ExitCode.Usage,
    );
  }
  if (bulkAdvertise !== undefined && bulkPort === null) {
    throw new CliError(
      "--bulk-advertise needs a bulk stream (not --bulk-port off)",
      ExitCode.Usage,
    );
  }
  const log = createLogger(level);
  // With a config: the Prometheus endpoint (migrations received by outcome, bytes stored).
  const ops = opts.loaded
    ? startAgentOps({ ...opts.loaded, logLevel: level }, { keepLogLevel: true })
    : undefined;
  // Containers (issue 16): podman runs with this agent's environment, plus the config's keys.
  const containers = containerAgentHooks({
    stateDir: opts.stateDir,
    nodes: runtimeNodes(opts.loaded?.containers),
  });
  const destination = new Destination({
    stateDir: opts.stateDir,
    restore: containers.restore(restoreMigration),
  });
  for (const r of destination.recover()) {
    log({
      level: "warn",
      msg: "a restored copy waits (stopped) for its source to commit or roll back",
      migrationId: r.id,
      pid: r.pids?.[0],
    });
  }
  // Each restore starts CRIU: let it load its kernel probe from a cache (not on the downtime path).
  const kdat = await ensureKerndatCache().catch(() => "unavailable");
  log({ level: "debug", msg: "criu kerndat cache", state: kdat });
  const phases = new Map(destination.list().map((r) => [r.id, r.phase]));
  await containers.sweep((id) => phases.get(id)).catch((e) =>
    log({ level: "error", msg: "container sweep failed", error: String(e) })
  );
  const onResolve: ResolveHandler = async (id, owner, action) => {
    const base = destination.resolve(id, owner, action);
    // After post-copy: what the check of the pages that arrived saw.
    const lazy = action === "query" && base.state !== "unknown"
      ? await lazyCheckReport(id, 5000)
      : undefined;
    const answer = lazy ? { ...base, lazy } : base;
    if (!answer.error || answer.state === "discarded") {
      await containers.afterResolve(id, answer.state).catch((e) =>
        log({ level: "error", msg: "container cleanup failed", migrationId: id, error: String(e) })
      );
    }
    return answer;
  };
  const onRestore: RestoreHandler = async (ctx) => {
    ops?.metrics.inProgress.inc({ role: "destination" });
    try {
      const result = await destination.restore(ctx);
      const engine = typeof ctx.request.engine === "string" ? ctx.request.engine : "unknown";
      ops?.metrics.migrations.inc({
        outcome: result.ok ? "success" : "failed",
        engine,
        policy: "n/a",
      });
      ops?.metrics.bytes.inc({ direction: "received" }, ctx.store.bytesStored);
      return result;
    } finally {
      ops?.metrics.inProgress.dec({ role: "destination" });
    }
  };
  let agent;
  try {
    agent = await startAgent({
      listen: opts.listen,
      stateDir: opts.stateDir,
      transport,
      log,
      resumeTimeoutMs,
      memoryLimitBytes,
      maxMigrations: Math.floor(maxMigrations),
      bulkPort,
      bulkAdvertise,
      onRestore,
      onResolve,
      onContainerCheck: (check) => containers.check(check),
    });
  } catch (e) {
    if (e instanceof Deno.errors.AddrInUse) {
      throw new CliError(
        `${opts.listen} is already in use: pick another --listen port`,
        ExitCode.Environment,
      );
    }
    if (e instanceof Deno.errors.PermissionDenied) {
      throw new CliError(`not permitted to listen on ${opts.listen}`, ExitCode.NotPermitted);
    }
    throw peerCliError(e);
  }
  // Migrations this node was the source of and that died with it: ask their destinations.
  const recovery = recoverNode(opts.stateDir).then((recovered) => {
    for (const r of recovered) {
      log({
        level: r.pending ? "error" : "warn",
        msg: "recovered an interrupted migration",
        migrationId: r.id,
        peer: r.peer,
        from: r.from,
        phase: r.phase,
        workload: r.workload,
        detail: r.detail,
      });
    }
  }, (e) => log({ level: "error", msg: "recovery failed", error: String(e) }));
  const stop = Promise.withResolvers<string>();
  const onSignal = (name: string) => () => stop.resolve(name);
  const onInt = onSignal("SIGINT"), onTerm = onSignal("SIGTERM");
  Deno.addSignalListener("SIGINT", onInt);
  Deno.addSignalListener("SIGTERM", onTerm);
  try {
    const signal = await stop.promise;
    log({ level: "info", msg: "stopping", signal });
    await recovery;
    await agent.close();
    await ops?.close();
  } finally {
    Deno.removeSignalListener("SIGINT", onInt);
    Deno.removeSignalListener("SIGTERM", onTerm);
  }
}
