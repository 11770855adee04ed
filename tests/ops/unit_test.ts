import assert from "node:assert/strict";
import { CRIU_CAPABILITIES, defaultCapabilities, renderUnit } from "../../src/ops/unit.ts";
import { requireCommand } from "../support/env.ts";

function verify(unitText: string): { code: number; stderr: string } {
  const dir = Deno.makeTempDirSync({ prefix: "u2cm-unit-" });
  try {
    const binary = `${dir}/u2cm`;
    Deno.writeTextFileSync(binary, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    const unit = `${dir}/u2cm-agent.service`;
    Deno.writeTextFileSync(unit, unitText.replaceAll("@BIN@", binary));
    const out = new Deno.Command("systemd-analyze", {
      args: ["verify", unit],
      env: { SYSTEMD_LOG_COLOR: "0" },
      stdout: "piped",
      stderr: "piped",
    }).outputSync();
    return { code: out.code, stderr: new TextDecoder().decode(out.stderr).trim() };
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

const BASE = {
  binary: "@BIN@",
  config: "/etc/u2cm/config.json",
  stateDir: "/var/lib/u2cm",
  cacheDir: "/var/cache/u2cm",
};

Deno.test("the agent unit passes systemd-analyze verify without a warning", () => {
  requireCommand("systemd-analyze", "systemd");
  const result = verify(renderUnit(BASE));
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stderr, "", "no warnings");
});

Deno.test("systemd-analyze verify catches a broken unit (the check can fail)", () => {
  requireCommand("systemd-analyze", "systemd");
  const broken = renderUnit(BASE).replace("KillMode=process", "KillMode=bogus");
  assert.notEqual(verify(broken).stderr, "");
});

Deno.test("the unit restarts on failure, bounds capabilities to CRIU's and avoids CRIU-breaking sandboxing", () => {
  const unit = renderUnit(BASE);
  assert.match(unit, /^Restart=on-failure$/m);
  assert.match(unit, /^KillMode=process$/m);
  assert.match(unit, /^Delegate=yes$/m);
  assert.match(unit, /^ExecStart=@BIN@ agent --config \/etc\/u2cm\/config.json$/m);
  const caps = unit.match(/^CapabilityBoundingSet=(.*)$/m)?.[1].split(" ") ?? [];
  for (const cap of CRIU_CAPABILITIES) assert.ok(caps.includes(cap), `${cap} kept`);
  for (
    const cap of ["CAP_SYS_MODULE", "CAP_SYS_BOOT", "CAP_SYS_RAWIO", "CAP_MAC_ADMIN", "CAP_BPF"]
  ) {
    assert.ok(!caps.includes(cap), `${cap} dropped`);
  }
  assert.deepEqual(caps, defaultCapabilities());
  for (
    const option of [
      "ProtectSystem",
      "ProtectHome",
      "PrivateTmp",
      "PrivateDevices",
      "NoNewPrivileges",
      "SystemCallFilter",
      "ProtectKernelTunables",
      "ProtectControlGroups",
      "RestrictNamespaces",
    ]
  ) assert.doesNotMatch(unit, new RegExp(`^${option}=`, "m"), `${option} would break CRIU`);
});

Deno.test("capabilities 'all' leaves the bounding set unrestricted; paths with spaces are quoted", () => {
  const unit = renderUnit({ ...BASE, stateDir: "/srv/u2cm state", capabilities: "all" });
  assert.doesNotMatch(unit, /^CapabilityBoundingSet=/m);
  assert.match(unit, /^Environment="U2CM_STATE_DIR=\/srv\/u2cm state"$/m);
  requireCommand("systemd-analyze", "systemd");
  const result = verify(unit);
  assert.equal(result.stderr, "");
});
