/**
 * `u2cm report RESULT.json -o report.html`: a self-contained HTML page (inline SVG, nothing
 * loaded from anywhere) for a migration result or simulation results.
 *
 * @module
 */
import type { Command } from "commander";
import { detectReport, renderReport, ReportInputError } from "../report/mod.ts";
import { CliError, ExitCode } from "./errors.ts";

/** Add `report` to the program. */
export function register(program: Command): void {
  program
    .command("report <result>")
    .description(
      "render a migration result (u2cm migrate --format json) or simulation results " +
        "(u2cm simulate --format json) as a self-contained HTML page",
    )
    .option("-o, --output <file>", "write the page here (default: stdout)")
    .action(async (file: string, opts: { output?: string }) => await runReport(file, opts.output));
}

async function runReport(file: string, output: string | undefined): Promise<void> {
  let text: string;
  try {
    text = file === "-"
      ? await new Response(Deno.stdin.readable).text()
      : await Deno.readTextFile(file);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message;
    throw new CliError(`cannot read ${file}: ${why}`, ExitCode.BadInput);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new CliError(`${file} is not valid JSON: ${(e as Error).message}`, ExitCode.BadInput);
  }
  let input;
  try {
    input = detectReport(json);
  } catch (e) {
    if (e instanceof ReportInputError) {
      throw new CliError(
        `${file}: ${e.message} (give the JSON printed by 'u2cm migrate --format json' or ` +
          "'u2cm simulate --format json')",
        ExitCode.BadInput,
      );
    }
    throw e;
  }
  const html = renderReport(input);
  if (output === undefined) {
    await Deno.stdout.write(new TextEncoder().encode(html));
    return;
  }
  try {
    await Deno.writeTextFile(output, html);
  } catch (e) {
    throw new CliError(`cannot write ${output}: ${(e as Error).message}`, ExitCode.Failure);
  }
  console.error(`u2cm: wrote ${input.kind} report to ${output} (${html.length} bytes)`);
}
