/**
 * The README's CLI reference and `u2cm COMMAND --help` list the same flags: every visible command
 * has a synopsis in the README, and each synopsis names exactly the options commander defines.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Command } from "commander";
import { buildProgram } from "../../src/cli/mod.ts";

const README = new URL("../../README.md", import.meta.url).pathname;

/** A synopsis entry: its first line and continuation lines, joined. */
interface Synopsis {
  /** The words naming the command (before the first option or bracket). */
  head: string[];
  /** The whole entry. */
  text: string;
}

Deno.test("every command's --help flags are the README synopsis flags, and back", () => {
  const entries = synopses(Deno.readTextFileSync(README));
  assert.ok(entries.length >= 10, "no synopsis blocks found in README.md");
  const problems: string[] = [];
  for (const { path, command } of leaves(buildProgram())) {
    const subNames = command.commands.map((c) => c.name());
    const mine = entries.filter((e) => matches(e, path, subNames));
    if (mine.length === 0) {
      problems.push(`u2cm ${path.join(" ")}: no synopsis in README.md`);
      continue;
    }
    const documented = new Set(mine.flatMap((e) => flagsIn(e.text)));
    const defined = new Set(
      command.options.filter((o) => !o.hidden).map((o) => o.long ?? o.short ?? ""),
    );
    for (const f of defined) {
      if (!documented.has(f)) problems.push(`u2cm ${path.join(" ")} ${f}: not in README.md`);
    }
    for (const f of documented) {
      if (!defined.has(f)) problems.push(`u2cm ${path.join(" ")} ${f}: in README.md, not --help`);
    }
  }
  assert.deepEqual(problems, []);
});

Deno.test("the synopsis parser reads heads, continuation lines and flags", () => {
  const [a, b] = synopses(
    "x\n```\nu2cm peer check NAME [--timeout S]\n           [--format json|table]\n" +
      "u2cm report RESULT.json [-o report.html]   # comment --not-a-flag\n```\n",
  );
  assert.deepEqual(a.head, ["peer", "check", "NAME"]);
  assert.deepEqual(flagsIn(a.text), ["--timeout", "--format"]);
  assert.deepEqual(flagsIn(b.text), ["--output"]);
});

/** Every visible command that runs an action, with its path of names. */
function leaves(program: Command): { path: string[]; command: Command }[] {
  const out: { path: string[]; command: Command }[] = [];
  const walk = (c: Command, path: string[]) => {
    for (const sub of c.commands) {
      if ((sub as unknown as { _hidden?: boolean })._hidden) continue;
      const here = [...path, sub.name()];
      const hasAction = (sub as unknown as { _actionHandler?: unknown })._actionHandler != null;
      if (hasAction || sub.commands.length === 0) out.push({ path: here, command: sub });
      walk(sub, here);
    }
  };
  walk(program, []);
  return out;
}

/** Whether entry `e` is a synopsis of the command at `path` (not of one of its sub-commands). */
function matches(e: Synopsis, path: string[], subNames: string[]): boolean {
  if (e.head[0] !== path[0]) return false;
  if (path.length === 1) return !subNames.some((s) => e.head.slice(1).includes(s));
  return e.head.slice(1).includes(path[1]);
}

/** The `u2cm …` entries of the README's unlabelled code blocks. */
function synopses(text: string): Synopsis[] {
  const out: Synopsis[] = [];
  let fence: "none" | "plain" | "labelled" = "none";
  for (const line of text.split("\n")) {
    if (/^```/.test(line)) {
      fence = fence !== "none" ? "none" : line.trim() === "```" ? "plain" : "labelled";
      continue;
    }
    if (fence !== "plain") continue;
    const body = line.replace(/\s+#\s.*$/, "");
    if (body.startsWith("u2cm ")) {
      const words = body.slice(5).split(/\s+/);
      const stop = words.findIndex((w) => /^[-[(]/.test(w));
      out.push({ head: words.slice(0, stop < 0 ? words.length : stop), text: body });
    } else if (/^\s+\S/.test(body) && out.length > 0) {
      out[out.length - 1].text += ` ${body.trim()}`;
    }
  }
  return out;
}

/** The option flags an entry names; `-o` stands for `--output`, as commander defines it. */
function flagsIn(text: string): string[] {
  const flags = [...text.matchAll(/(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])(?![\w-])/g)].map((m) =>
    m[1] === "-o" ? "--output" : m[1]
  );
  return [...new Set(flags)];
}
