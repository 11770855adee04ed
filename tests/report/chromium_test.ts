import assert from "node:assert/strict";
import { runCli } from "../../src/cli/mod.ts";
import { requireCommand } from "../support/env.ts";
import { decodePng, nonWhitePixels } from "./png.ts";

const FIXTURES = new URL("./fixtures/", import.meta.url).pathname;

function chromium(args: string[], profile: string): Deno.CommandOutput {
  const out = new Deno.Command(requireCommand("chromium"), {
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--user-data-dir=${profile}`,
      ...args,
    ],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
    signal: AbortSignal.timeout(90_000),
  }).outputSync();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return out;
}

/** The text content of a DOM dump's table cells. */
function cells(dom: string): string[] {
  return [...dom.matchAll(/<td>([^<]*)<\/td>/g)].map((m) => m[1]);
}

async function renderAndOpen(fixture: string) {
  const dir = Deno.makeTempDirSync({ prefix: "u2cm-report-" });
  const html = `${dir}/report.html`;
  const code = await runCli(["report", `${FIXTURES}${fixture}`, "-o", html]);
  assert.equal(code, 0);
  const png = `${dir}/shot.png`;
  chromium([`--screenshot=${png}`, "--window-size=820,1400", `file://${html}`], `${dir}/profile`);
  const image = decodePng(Deno.readFileSync(png));
  const dom = new TextDecoder().decode(
    chromium(["--dump-dom", `file://${html}`], `${dir}/profile`).stdout,
  );
  Deno.removeSync(dir, { recursive: true });
  return { image, dom };
}

Deno.test("a migration report opens in headless chromium: non-blank, numbers match the JSON", async () => {
  const json = JSON.parse(Deno.readTextFileSync(`${FIXTURES}migration.json`));
  const { image, dom } = await renderAndOpen("migration.json");
  assert.equal(image.width, 820);
  const inked = nonWhitePixels(image) / (image.width * image.height);
  assert.ok(inked > 0.05, `screenshot has content (${(inked * 100).toFixed(1)} % non-white)`);
  const td = cells(dom);
  for (const key of ["total_ms", "downtime_ms", "bytes_sent", "precopy_rounds", "dest_pid"]) {
    const i = td.indexOf(key);
    assert.ok(i >= 0, `${key} row`);
    assert.equal(Number(td[i + 1]), json[key], key);
  }
  for (const [phase, value] of Object.entries(json.phases)) {
    assert.equal(Number(td[td.indexOf(phase) + 1]), value, phase);
  }
  const roundCells = td.slice(td.indexOf("restore_ms") + 2);
  json.rounds.forEach((r: Record<string, number>, i: number) => {
    const row = roundCells.slice(i * 6, i * 6 + 6).map(Number);
    assert.deepEqual(row, [
      r.index,
      r.pages_sent,
      r.pages_dirtied,
      r.predicted_dirty ?? NaN,
      r.duration_ms,
      r.bytes,
    ]);
  });
  assert.equal((dom.match(/<svg /g) ?? []).length, 3);
});

Deno.test("a simulation report opens in headless chromium: non-blank, numbers match the JSON", async () => {
  const json = JSON.parse(Deno.readTextFileSync(`${FIXTURES}simulation.json`));
  const { image, dom } = await renderAndOpen("simulation.json");
  const inked = nonWhitePixels(image) / (image.width * image.height);
  assert.ok(inked > 0.05, `screenshot has content (${(inked * 100).toFixed(1)} % non-white)`);
  const td = cells(dom);
  for (const row of json.results) {
    const i = td.indexOf(row.policy);
    assert.ok(i >= 0, row.policy);
    assert.deepEqual(td.slice(i + 1, i + 6).map(Number), [
      row.total_ms,
      row.downtime_ms,
      row.bytes_sent,
      row.precopy_rounds,
      row.pages_resent,
    ]);
  }
});

Deno.test("u2cm report rejects malformed input with exit 6 and writes nothing", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "u2cm-report-" });
  try {
    Deno.writeTextFileSync(`${dir}/bad.json`, '{"ok": true, "engine": "delta"');
    assert.equal(await runCli(["report", `${dir}/bad.json`, "-o", `${dir}/out.html`]), 6);
    Deno.writeTextFileSync(`${dir}/bad.json`, '{"ok": true}');
    assert.equal(await runCli(["report", `${dir}/bad.json`, "-o", `${dir}/out.html`]), 6);
    assert.equal(await runCli(["report", `${dir}/missing.json`, "-o", `${dir}/out.html`]), 6);
    assert.throws(() => Deno.statSync(`${dir}/out.html`));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
