/**
 * Options of the whole program, given before the sub-command: `u2cm --log-level debug agent …`.
 *
 * @module
 */
import type { Command } from "commander";
import { LOG_LEVELS, type LogLevel, setLogLevel } from "../ops/log.ts";
import { parseChoice } from "./options.ts";

/** Add `--log-level` to the program; it sets the level of every structured logger. */
export function register(program: Command): void {
  program
    .option(
      "--log-level <level>",
      `structured log level on stderr: ${LOG_LEVELS.join("|")} ($U2CM_LOG_LEVEL)`,
    )
    .hook("preAction", (root) => {
      const value = root.opts().logLevel as string | undefined;
      if (value !== undefined) {
        setLogLevel(parseChoice("--log-level", value, LOG_LEVELS) as LogLevel);
      }
    });
}
