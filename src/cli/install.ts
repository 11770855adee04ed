/**
 * `u2cm install` (binary, systemd unit, configuration, identity) and `u2cm uninstall`.
 *
 * @module
 */
import type { Command } from "commander";
import { ConfigError } from "../ops/config.ts";
import { install, InstallError, uninstall, UNIT_NAME } from "../ops/install.ts";
import { CliError, ExitCode } from "./errors.ts";
import { parseChoice } from "./options.ts";

const FORMATS = ["json", "table"] as const;

/** Add `install` and `uninstall` to the program. */
export function register(program: Command): void {
  program
    .command("install")
    .description("install u2cm, the u2cm-agent.service unit, a config file and the node identity")
    .option("--prefix <dir>", "install under DIR instead of / (for packaging and tests)")
    .option("--config <file>", "install this configuration file (validated) instead of defaults")
    .option("--force", "replace an existing installation's files")
    .option("--no-identity", "do not create the node identity")
    .option("--enable", "then systemctl daemon-reload and enable --now the agent (no --prefix)")
    .option("--format <format>", "json|table", "table")
    .action(async (opts: InstallCliOptions) => await runInstall(opts));
  program
    .command("uninstall")
    .description("remove what 'u2cm install' created (stops and disables the agent first)")
    .option("--prefix <dir>", "the prefix given to install")
    .option("--keep-state", "keep the state dir (identity, peers, migration records)")
    .option("--format <format>", "json|table", "table")
    .action((opts: { prefix?: string; keepState?: boolean; format: string }) => runUninstall(opts));
}

interface InstallCliOptions {
  prefix?: string;
  config?: string;
  force?: boolean;
  identity: boolean;
  enable?: boolean;
  format: string;
}

async function runInstall(opts: InstallCliOptions): Promise<void> {
  const format = parseChoice("--format", opts.format, FORMATS);
  const prefix = checkPrefix(opts.prefix);
  if (opts.enable && prefix) {
    throw new CliError("--enable installs into the running system; drop --prefix", ExitCode.Usage);
  }
  if (!prefix && Deno.uid() !== 0) {
    throw new CliError("installing into / needs root (or use --prefix DIR)", ExitCode.NotPermitted);
  }
  let result;
  try {
    result = await install({
      prefix,
      configSource: opts.config,
      force: opts.force === true,
      identity: opts.identity,
    });
  } catch (e) {
    throw installCliError(e);
  }
  if (opts.enable) {
    systemctl(["daemon-reload"]);
    systemctl(["enable", "--now", UNIT_NAME]);
  }
  if (format === "json") {
    console.log(JSON.stringify({ ...result, enabled: opts.enable === true }));
    return;
  }
  const p = result.paths;
  console.log(`u2cm       ${p.binary} (${result.executable})`);
  console.log(`unit       ${p.unit}`);
  console.log(`config     ${p.config}`);
  console.log(`state dir  ${result.config.stateDir} (identity ${result.identity})`);
  console.log(`cache dir  ${result.config.cacheDir}`);
  if (!prefix && !opts.enable) {
    console.log(
      `\nstart the agent with:\n  systemctl daemon-reload && systemctl enable --now ${UNIT_NAME}`,
    );
  }
}

function runUninstall(opts: { prefix?: string; keepState?: boolean; format: string }): void {
  const format = parseChoice("--format", opts.format, FORMATS);
  const prefix = checkPrefix(opts.prefix);
  if (!prefix && Deno.uid() !== 0) {
    throw new CliError(
      "uninstalling from / needs root (or use --prefix DIR)",
      ExitCode.NotPermitted,
    );
  }
  if (!prefix && systemdRunning()) systemctl(["disable", "--now", UNIT_NAME], true);
  let result;
  try {
    result = uninstall({ prefix, keepState: opts.keepState === true });
  } catch (e) {
    throw installCliError(e);
  }
  if (!prefix && systemdRunning()) systemctl(["daemon-reload"], true);
  if (format === "json") {
    console.log(JSON.stringify(result));
    return;
  }
  for (const path of result.removed) console.log(`removed  ${path}`);
  for (const path of result.kept) console.log(`kept     ${path}`);
}

function checkPrefix(prefix: string | undefined): string {
  if (prefix === undefined) return "";
  if (prefix === "" || prefix.split("/").includes("..")) {
    throw new CliError(
      `--prefix must be a directory without '..', got '${prefix}'`,
      ExitCode.Usage,
    );
  }
  const absolute = prefix.startsWith("/") ? prefix : `${Deno.cwd()}/${prefix}`;
  return absolute === "/" ? "" : absolute.replace(/\/+$/, "");
}

function installCliError(e: unknown): unknown {
  if (e instanceof ConfigError) return new CliError(e.message, ExitCode.BadInput);
  if (e instanceof InstallError) {
    const code = e.kind === "environment"
      ? ExitCode.Environment
      : e.kind === "exists"
      ? ExitCode.Failure
      : ExitCode.BadInput;
    return new CliError(e.message, code);
  }
  if (e instanceof Deno.errors.PermissionDenied) {
    return new CliError(`permission denied: ${e.message}`, ExitCode.NotPermitted);
  }
  return e;
}

function systemdRunning(): boolean {
  try {
    return Deno.statSync("/run/systemd/system").isDirectory;
  } catch {
    return false;
  }
}

function systemctl(args: string[], bestEffort = false): void {
  let ok = false;
  let detail = "";
  try {
    const out = new Deno.Command("systemctl", { args, stdout: "null", stderr: "piped" })
      .outputSync();
    ok = out.success;
    detail = new TextDecoder().decode(out.stderr).trim();
  } catch (e) {
    detail = e instanceof Deno.errors.NotFound ? "systemctl not found" : (e as Error).message;
  }
  if (ok || bestEffort) return;
  throw new CliError(
    `systemctl ${args.join(" ")} failed: ${detail || "unknown error"} ` +
      "(is systemd running on this node? start the agent by hand: u2cm agent --config …)",
    ExitCode.Environment,
  );
}
