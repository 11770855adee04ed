/**
 * The `u2cm` command-line program: one sub-command per module in this folder.
 *
 * @module
 */
import { Command } from "commander";
import { CliError, ExitCode } from "./errors.ts";
import { register as registerTrace } from "./trace.ts";
import { register as registerPredictEval } from "./predict_eval.ts";
import { register as registerInit } from "./init.ts";
import { register as registerPeer } from "./peer.ts";
import { register as registerAgent } from "./agent.ts";
import { register as registerSimulate } from "./simulate.ts";
import { register as registerDoctor } from "./doctor.ts";
import { register as registerMigrate } from "./migrate.ts";
import { register as registerRecover } from "./recover.ts";
import { register as registerGlobalOptions } from "./global_options.ts";
import { register as registerInstall } from "./install.ts";
import { register as registerReport } from "./report.ts";
import { register as registerPick } from "./pick.ts";

export { CliError, ExitCode } from "./errors.ts";

/** A module that adds one sub-command to the program. */
export type CommandRegistrar = (program: Command) => void;

/** The sub-commands, in `--help` order. Each module exports `register`. */
const REGISTRARS: CommandRegistrar[] = [
  registerGlobalOptions,
  registerDoctor,
  registerInit,
  registerPeer,
  registerAgent,
  registerMigrate,
  registerRecover,
  registerTrace,
  registerSimulate,
  registerPredictEval,
  registerReport,
  registerInstall,
  registerPick,
];

/** Build the commander program with every registered sub-command. */
export function buildProgram(): Command {
  const program = new Command("u2cm")
    .description("Predictive live migration of process trees and containers between edge nodes")
    .version("0.1.0")
    .exitOverride()
    .enablePositionalOptions()
    .showHelpAfterError("(run with --help for usage)")
    .configureOutput({ writeErr: (s) => Deno.stderr.writeSync(new TextEncoder().encode(s)) });
  for (const register of REGISTRARS) register(program);
  return program;
}

/**
 * Run the program on `args`; returns the exit code instead of exiting, so tests can call it.
 */
export async function runCli(args: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(args, { from: "user" });
    return ExitCode.Ok;
  } catch (e) {
    return reportError(e);
  }
}

function reportError(e: unknown): number {
  // commander signals help/version and usage errors through exceptions when exitOverride is on.
  const err = e as { code?: string; exitCode?: number; message?: string };
  if (typeof err?.code === "string" && err.code.startsWith("commander.")) {
    if (
      err.code === "commander.helpDisplayed" || err.code === "commander.version" ||
      err.code === "commander.help"
    ) return ExitCode.Ok;
    return ExitCode.Usage;
  }
  if (e instanceof CliError) {
    console.error(`u2cm: error: ${e.message}`);
    return e.code;
  }
  console.error(`u2cm: unexpected error: ${(e as Error)?.stack ?? e}`);
  return ExitCode.Failure;
}
