import assert from "node:assert/strict";
import { createLogger, getLogLevel, setLogLevel } from "../../src/ops/log.ts";
import { runCli } from "../../src/cli/mod.ts";

const NOW = () => new Date("2026-01-02T03:04:05.000Z");

Deno.test("records are one JSON object per line with ts, level, msg and fields, filtered by level", () => {
  const lines: string[] = [];
  const log = createLogger({ level: "info", write: (l) => lines.push(l), journal: false, now: NOW })
    .child({ migration: "m-1" });
  log.debug("hidden");
  log.info("round sent", { round: 3, bytes: 10n });
  log.error("peer gone", { err: new Error("ECONNRESET") });
  assert.equal(lines.length, 2);
  assert.deepEqual(JSON.parse(lines[0]), {
    ts: "2026-01-02T03:04:05.000Z",
    level: "info",
    msg: "round sent",
    migration: "m-1",
    round: 3,
    bytes: "10",
  });
  assert.deepEqual(JSON.parse(lines[1]).err, { name: "Error", message: "ECONNRESET" });
  assert.ok(log.enabled("warn") && !log.enabled("debug"));
});

Deno.test("under journald each line carries its syslog priority prefix", () => {
  const lines: string[] = [];
  const log = createLogger({
    level: "debug",
    write: (l) => lines.push(l),
    journal: true,
    now: NOW,
  });
  log.error("e");
  log.warn("w");
  log.info("i");
  log.debug("d");
  assert.deepEqual(lines.map((l) => l.slice(0, 3)), ["<3>", "<4>", "<6>", "<7>"]);
  assert.equal(JSON.parse(lines[0].slice(3)).msg, "e");
});

Deno.test("--log-level sets the process-wide level and rejects unknown levels (exit 2)", async () => {
  const before = getLogLevel();
  try {
    assert.equal(
      await runCli(["--log-level", "debug", "uninstall", "--prefix", "/nonexistent-u2cm"]),
      6,
    );
    assert.equal(getLogLevel(), "debug");
    assert.equal(await runCli(["--log-level", "loud", "uninstall", "--prefix", "/x"]), 2);
  } finally {
    setLogLevel(before);
  }
});

Deno.test("a real child process logs JSON lines on stderr at the level from U2CM_LOG_LEVEL", () => {
  const code = `import { logger } from "${new URL("../../src/ops/log.ts", import.meta.url)}";
const log = logger({ pid: Deno.pid });
log.debug("d"); log.info("i"); log.warn("w");`;
  const out = new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    env: { U2CM_LOG_LEVEL: "warn", JOURNAL_STREAM: "" },
    stderr: "piped",
  }).outputSync();
  const lines = new TextDecoder().decode(out.stderr).trim().split("\n");
  assert.equal(lines.length, 1, lines.join("\n"));
  const rec = JSON.parse(lines[0]);
  assert.equal(rec.level, "warn");
  assert.equal(rec.msg, "w");
  assert.equal(typeof rec.pid, "number");
});
