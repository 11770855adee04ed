/**
 * `u2cm migrate --pid PID --to PEER`: live-migrate a process tree to a peer's agent with the
 * migration driver (engine names pick its parts) and a stop policy, with a live progress bar on a
 * terminal and a JSON or table result. Exit 8 when the migration failed and the source runs on;
 * interrupted migrations of this node are recovered first.
 *
 * @module
 */
import { compressionOf, failedResult, printResult, resultOf } from "./migrate_result.ts";
import { DEFAULT_CONFIG_PATH } from "../ops/config.ts";
import { gatherMigrationArgs, readConfigOrDefault } from "./pick.ts";
import { FEATURE_NAMES } from "../history/features.ts";
import { bundledModelsDir } from "../ops/assets.ts";
import { liveProvider, type PredictionProvider } from "../predict/mod.ts";
import type { Command } from "commander";
import cliProgress from "cli-progress";
import process from "node:process";
import { locateCriu } from "../criu/locate.ts";
import { ensureKerndatCache } from "../criu/kerndat.ts";
import { hostFacts, LAZY_PIPE_MAX_SIZE } from "../criu/host.ts";
import type { MigrationChannel } from "../engine/channel.ts";
import { VERIFY_MODES } from "../engine/contract.ts";
import { runMigration } from "../engine/driver.ts";
import { freezePathOf } from "../engine/freeze_path.ts";
import { tcpPageServer } from "../engine/final_post_copy.ts";
import { ENGINE_CHOICES, EngineUnavailableError, planOf } from "../engine/select.ts";
import { isAlive, treeMemoryBytes } from "../tracker/proc.ts";
import { MigrationError, type ProgressEvent } from "../engine/types.ts";
import { COMPRESS_MODES, type CompressionStats, type PeerClient } from "../peer/mod.ts";
import { createPolicy, POLICY_NAMES, UnknownPolicyError, withRoundCap } from "../policy/mod.ts";
import { probeSoftDirty } from "../tracker/probe.ts";
import { CliError, ExitCode } from "./errors.ts";
import { parseChoice, parseNumberInRange, parsePositiveInt, requireProcess } from "./options.ts";
import { defaultStateDir, peerCliError } from "./peer_errors.ts";
import { connectWithRetry } from "./connect.ts";
import { recoverNode } from "./recover.ts";
import { type ContainerTarget, containerTarget, RUNTIME_CHOICES } from "./migrate_container.ts";
import { containerSummary } from "../container/types.ts";

const FORMATS = ["table", "json"] as const;

/** Add `migrate` to the program. */
export function register(program: Command): void {
  program
    .command("migrate")
    .description("live-migrate a process tree to a peer's agent")
    .option("--pid <pid>", "root pid of the process tree to migrate")
    .option("--container <name|id>", "a container to migrate (podman or runc; see --runtime)")
    .option("--runtime <runtime>", `container runtime: ${RUNTIME_CHOICES.join("|")}`, "auto")
    .option("--with-volumes", "copy the container's named volumes (default: they must exist there)")
    .option("--to <peer>", "destination peer (a name from 'u2cm peer list')")
    .option("--engine <engine>", `engine: ${ENGINE_CHOICES.join("|")}`, "auto")
    .option("--policy <policy>", `stop policy: ${POLICY_NAMES.join("|")}`, "u2c")
    .option("--format <format>", `result format: ${FORMATS.join("|")}`, "table")
    .option("--state-dir <dir>", "state directory ($U2CM_STATE_DIR)", defaultStateDir())
    .option("--max-downtime <ms>", "downtime budget for the policy, in milliseconds")
    .option("--max-rounds <n>", "most pre-copy rounds", "30")
    .option(
      "--page-server-address <ip>",
      "this node's address the peer fetches lazy pages from",
      "127.0.0.1",
    )
    .option("--no-throttle", "never throttle the workload's CPU")
    .option(
      "--verify <mode>",
      `read back the restored tree: ${VERIFY_MODES.join("|")} (a sample per mapping | every page)`,
      "sample",
    )
    .option(
      "--compress <mode>",
      "LZ4 page batches: auto (when the link is slower than LZ4) | on | off",
      "auto",
    )
    .option(
      "--tcp <mode>",
      "established TCP connections: close (clients reconnect) | established (TCP repair)",
    )
    .option("--resume-timeout <s>", "seconds to wait for a dropped peer link to come back", "30")
    .option("--work-dir <dir>", "scratch directory for dumps (tmpfs) ($U2CM_WORK_DIR)")
    .option("--yes", "do not ask for confirmation after prompting")
    .option("--config <file>", "node configuration (peers, defaults)", DEFAULT_CONFIG_PATH)
    .action(async (opts: MigrateOptions) => await runMigrate(opts));
}

interface MigrateOptions {
  pid?: string;
  container?: string;
  runtime: string;
  withVolumes?: boolean;
  to?: string;
  yes?: boolean;
  config: string;
  engine: string;
  policy: string;
  format: string;
  stateDir: string;
  maxDowntime?: string;
  maxRounds: string;
  pageServerAddress: string;
  throttle: boolean;
  verify: string;
  compress: string;
  tcp?: string;
  resumeTimeout: string;
  workDir?: string;
}

async function runMigrate(flags: MigrateOptions): Promise<void> {
  const opts = await completeArgs(flags);
  if (opts.container !== undefined && opts.pid !== undefined) {
    throw new CliError("give --pid or --container, not both", ExitCode.Usage);
  }
  const runtime = parseChoice("--runtime", opts.runtime, RUNTIME_CHOICES);
  const target = opts.container === undefined ? undefined : await containerTarget({
    ref: opts.container,
    runtime,
    withVolumes: opts.withVolumes === true,
    containers: readConfigOrDefault(opts.config).containers,
    stateDir: opts.stateDir,
  });
  if (target && !["auto", "delta"].includes(opts.engine)) {
    throw new CliError(
      `containers migrate with --engine delta (u2cm's pre-copy, then the runtime's checkpoint); ` +
        `'${opts.engine}' is not offered (no runtime restores lazily above runc)`,
      ExitCode.Usage,
    );
  }
  const pid = target ? target.info.initPid : parsePositiveInt("--pid", opts.pid!);
  const format = parseChoice("--format", opts.format, FORMATS);
  const requested = target ? "delta" : parseChoice("--engine", opts.engine, ENGINE_CHOICES);
  const maxRounds = parsePositiveInt("--max-rounds", opts.maxRounds);
  const tcp = opts.tcp === undefined
    ? undefined
    : parseChoice("--tcp", opts.tcp, ["close", "established"] as const);
  const compress = parseChoice("--compress", opts.compress, COMPRESS_MODES);
  const verify = parseChoice("--verify", opts.verify, VERIFY_MODES);
  const resumeTimeoutMs = parseNumberInRange("--resume-timeout", opts.resumeTimeout, 0.1, 3600) *
    1000;
  const maxDowntimeMs = opts.maxDowntime === undefined
    ? undefined
    : parseNumberInRange("--max-downtime", opts.maxDowntime, 1, 3_600_000);
  let policy;
  try {
    policy = withRoundCap(createPolicy(opts.policy, { maxRounds }), maxRounds);
  } catch (e) {
    if (e instanceof UnknownPolicyError) throw new CliError(e.message, ExitCode.Usage);
    throw e;
  }
  requireProcess(pid);
  if (Deno.uid() !== 0) {
    throw new CliError("migrating needs root (CRIU dump/restore, ptrace)", ExitCode.NotPermitted);
  }
  if (!locateCriu()) {
    throw new CliError(
      "no CRIU found: run 'u2cm doctor --fix' to install a private CRIU 4.1.1",
      ExitCode.Environment,
    );
  }
  // The freeze starts CRIU: let it load its kernel probe from a cache (made here, before it).
  await ensureKerndatCache().catch(() => "unavailable");
  const host = hostFacts();
  let plan;
  try {
    plan = planOf(requested, {
      softDirty: probeSoftDirty().available,
      lazy: host.userfaultfd && (host.pipeMaxSize ?? 0) >= LAZY_PIPE_MAX_SIZE,
    });
  } catch (e) {
    if (e instanceof EngineUnavailableError) throw new CliError(e.message, ExitCode.Environment);
    throw e;
  }
  for (const r of await recoverNode(opts.stateDir)) {
    console.error(`u2cm: recovered interrupted migration ${r.id}: ${r.detail}`);
  }
  const id = `m${Date.now().toString(36)}${pid.toString(36)}`;
  const workDir = opts.workDir ?? Deno.env.get("U2CM_WORK_DIR") ?? defaultWorkDir();
  let client: PeerClient | undefined;
  let channel: (MigrationChannel & { readonly compression: CompressionStats }) | undefined;
  const controller = new AbortController();
  const onSignal = () => controller.abort(new Error("interrupted"));
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  const progress = format === "table" && Deno.stderr.isTerminal() ? new ProgressView() : undefined;
  const engineLabel = plan.name ?? "auto";
  try {
    const provider = await livePredictor(policy.name);
    const outcome = await runMigration({
      id,
      pid,
      channel: async () => {
        client = await connectWithRetry({
          stateDir: opts.stateDir,
          peer: opts.to,
          resumeTimeoutMs,
        });
        // The destination's store quota follows the whole tree (a large child under a tiny init);
        // only the scan-and-copy freeze restores from pages images kept as the pages arrive.
        channel = await client.openMigration(id, expectedBytes(pid, target), {
          compress,
          pagesImage: freezePathOf(plan) === "scan",
        });
        await target?.prepare(client, channel, id, workDir);
        return channel;
      },
      finalPhase: target?.finalPhase(),
      container: target?.journal(),
      policy,
      provider,
      stateDir: opts.stateDir,
      peer: opts.to,
      workDir,
      maxDowntimeMs,
      resumeTimeoutMs,
      throttle: opts.throttle,
      verify,
      compress,
      tcp,
      pageServer: tcpPageServer(opts.pageServerAddress),
      signal: controller.signal,
      onProgress: (ev) => progress?.update(ev),
    }, plan);
    progress?.stop();
    printResult(format, {
      ...resultOf(outcome),
      compression: compressionOf(channel!.compression),
      ...(target
        ? { container: { ...containerSummary(target.info), image_sent: target.imageSent } }
        : {}),
    });
  } catch (e) {
    progress?.stop();
    if (e instanceof MigrationError) {
      if (format === "json") {
        printResult(format, {
          ...failedResult(engineLabel, policy.name, e.message, channel),
          ...(target ? { container: containerSummary(target.info) } : {}),
        });
      }
      if (e.phase === "committed") {
        throw new CliError(`migration not finished: ${e.message}`, ExitCode.Peer);
      }
      if (controller.signal.aborted) {
        throw new CliError(`interrupted; ${sourceState(e)}`, ExitCode.Interrupted);
      }
      throw new CliError(
        `migration failed: ${e.message}; ${sourceState(e)}`,
        ExitCode.MigrationFailed,
      );
    }
    // The peer failed before any pre-copy: the workload was never touched.
    const err = peerCliError(e);
    if (err instanceof CliError && isAlive(pid)) {
      throw new CliError(`${err.message}; the source workload keeps running here`, err.code);
    }
    throw err;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
    await client?.close().catch(() => {});
  }
}

function sourceState(e: MigrationError): string {
  return e.sourceRunning
    ? "the source workload was resumed and keeps running here"
    : "the source workload is no longer running here";
}

/**
 * What the destination should make room for: the whole tree's memory (shared pages counted
 * once), and a container's image.
 */
function expectedBytes(pid: number, target: ContainerTarget | undefined): number {
  return treeMemoryBytes(pid) + (target?.imageBytes ?? 0);
}

/** Where scratch dumps go: tmpfs when there is one (u2cm makes its own directory inside). */
function defaultWorkDir(): string {
  try {
    if (Deno.statSync("/dev/shm").isDirectory) return "/dev/shm";
  } catch { /* no tmpfs there */ }
  return Deno.env.get("TMPDIR") ?? "/tmp";
}

/** A progress bar on stderr: round, MiB sent, dirty predicted vs actual, link rate, phase. */
class ProgressView {
  #bar = new cliProgress.SingleBar({
    format: "round {round} | {mib} MiB sent | dirty {pred} predicted / {actual} actual | " +
      "{rate} MiB/s | {phase}",
    stream: process.stderr,
    hideCursor: true,
    clearOnComplete: true,
  }, cliProgress.Presets.shades_classic);
  #payload = { round: 0, mib: "0.0", pred: "-", actual: "-", rate: "-", phase: "pre-copy" };

  constructor() {
    this.#bar.start(1, 0, this.#payload);
  }

  update(ev: ProgressEvent): void {
    if (ev.kind === "round") {
      this.#payload = {
        ...this.#payload,
        round: ev.round.index + 1,
        mib: (ev.bytesSent / 2 ** 20).toFixed(1),
        pred: ev.round.predicted_dirty === null ? "-" : String(ev.round.predicted_dirty),
        actual: String(ev.round.pages_dirtied),
        rate: (ev.linkBps / 2 ** 20).toFixed(0),
      };
    } else this.#payload = { ...this.#payload, phase: ev.phase };
    this.#bar.update(0, this.#payload);
  }

  stop(): void {
    this.#bar.stop();
  }
}

/**
 * The two-phase predictor (deployment model) for the policies that look at predictions; others
 * get none. When the model cannot be loaded the engine's moving-window model stands in, with a
 * warning.
 */
async function livePredictor(policy: string): Promise<PredictionProvider | undefined> {
  if (policy !== "u2c" && policy !== "hybrid") return undefined;
  try {
    return await liveProvider(bundledModelsDir(), FEATURE_NAMES.length);
  } catch (e) {
    console.error(`u2cm: warning: ${(e as Error).message}; using the moving-window predictor`);
    return undefined;
  }
}

/**
 * Fill in a missing `--pid` or `--to`: on a terminal by prompting (workload, peer, then engine and
 * policy with the flags' values recommended, then a confirmation); otherwise a usage error naming
 * the missing flags.
 */
async function completeArgs(opts: MigrateOptions): Promise<MigrateOptions & { to: string }> {
  if ((opts.pid !== undefined || opts.container !== undefined) && opts.to !== undefined) {
    return { ...opts, to: opts.to };
  }
  const config = { ...readConfigOrDefault(opts.config), stateDir: opts.stateDir };
  const picked = await gatherMigrationArgs(
    {
      pid: opts.pid,
      container: opts.container,
      to: opts.to,
      yes: opts.yes,
    },
    config,
    {
      engine: { value: opts.engine, reason: "--engine or its default" },
      policy: { value: opts.policy, reason: "--policy or its default" },
    },
  );
  if (opts.container !== undefined || picked.container) {
    return {
      ...opts,
      pid: undefined,
      container: opts.container ?? picked.container!.id,
      runtime: picked.container?.runtime ?? opts.runtime,
      to: picked.to,
      engine: picked.engine,
      policy: picked.policy,
    };
  }
  return {
    ...opts,
    pid: String(picked.pid),
    to: picked.to,
    engine: picked.engine,
    policy: picked.policy,
  };
}
