import assert from "node:assert/strict";
import { requireCommand } from "../support/env.ts";

const PROGRESS = new URL("../../src/ops/progress.ts", import.meta.url).href;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;
const SCRIPT = `import { createProgress } from "${PROGRESS}";
const bar = createProgress({ label: "rounds", total: 5, unit: "rounds" });
for (let i = 1; i <= 5; i++) {
  bar.update(i, "round " + i);
  bar.interrupt(() => console.log("line " + i + " visible=" + bar.visible));
  await new Promise((r) => setTimeout(r, 30));
}
bar.stop();
console.log("DONE");
`;

Deno.test("on a terminal the bar is drawn on stderr and ends at 100 %", async () => {
  requireCommand("tmux");
  const dir = Deno.makeTempDirSync({ prefix: "u2cm-progress-" });
  const script = `${dir}/demo.ts`;
  Deno.writeTextFileSync(script, SCRIPT);
  const socket = `u2cm-progress-${Deno.pid}`;
  const tmux = (...args: string[]) =>
    new Deno.Command("tmux", { args: ["-L", socket, ...args], stdout: "piped", stderr: "piped" })
      .outputSync();
  try {
    const cmd =
      `NO_COLOR=1 '${Deno.execPath()}' run -A --config '${CONFIG}' '${script}'; echo EXIT=$?; sleep 60`;
    assert.ok(tmux("new-session", "-d", "-x", "120", "-y", "20", "-s", "p", cmd).success);
    let screen = "";
    for (let i = 0; i < 600 && !/EXIT=\d/.test(screen); i++) {
      await new Promise((r) => setTimeout(r, 100));
      screen = new TextDecoder().decode(tmux("capture-pane", "-p", "-t", "p").stdout);
    }
    for (let i = 1; i <= 5; i++) assert.match(screen, new RegExp(`^line ${i} visible=true$`, "m"));
    assert.match(screen, /rounds \[[█░]+\] 100% \| 5\/5 rounds \| round 5/);
    assert.match(screen, /^DONE$/m);
    assert.match(screen, /EXIT=0/);
  } finally {
    tmux("kill-server");
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("with stderr not a terminal nothing is drawn", () => {
  const dir = Deno.makeTempDirSync({ prefix: "u2cm-progress-" });
  try {
    Deno.writeTextFileSync(`${dir}/demo.ts`, SCRIPT);
    const out = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--config", CONFIG, `${dir}/demo.ts`],
      stdout: "piped",
      stderr: "piped",
    }).outputSync();
    assert.equal(out.code, 0);
    assert.equal(
      new TextDecoder().decode(out.stdout),
      "line 1 visible=false\nline 2 visible=false\nline 3 visible=false\nline 4 visible=false\nline 5 visible=false\nDONE\n",
    );
    assert.equal(new TextDecoder().decode(out.stderr).replace(/.*Download.*\n/g, ""), "");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
