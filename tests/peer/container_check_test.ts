import assert from "node:assert/strict";
import { decodeControl, encodeControl } from "../../src/peer/protocol.ts";
import { ProtocolError } from "../../src/peer/errors.ts";

const check = {
  runtime: "podman" as const,
  id: "a".repeat(64),
  name: "web",
  imageId: "b".repeat(64),
  mounts: [{ type: "volume" as const, name: "data", source: "/srv/v", destination: "/data" }],
  withVolumes: false,
};

Deno.test("containerCheck and containerChecked round-trip through the validated protocol", () => {
  const m = decodeControl(
    encodeControl({ type: "containerCheck", migrationId: "m1", reqId: 7, check }),
  );
  assert.equal(m.type, "containerCheck");
  assert.deepEqual(m.type === "containerCheck" && m.check, check);
  const a = decodeControl(encodeControl({
    type: "containerChecked",
    migrationId: "m1",
    reqId: 7,
    answer: { runtimeOk: true, imagePresent: false, problems: [] },
  }));
  assert.equal(a.type, "containerChecked");
});

Deno.test("a container check with a relative or '..' path, an unknown runtime or extra keys is refused", () => {
  const bad = [
    { ...check, mounts: [{ type: "bind", source: "../etc", destination: "/x" }] },
    { ...check, mounts: [{ type: "bind", source: "/a/../etc", destination: "/x" }] },
    { ...check, runtime: "docker" },
    { ...check, name: "-bad" },
    { ...check, extra: 1 },
  ];
  for (const c of bad) {
    const text = JSON.stringify({
      v: 1,
      type: "containerCheck",
      migrationId: "m1",
      reqId: 1,
      check: c,
    });
    assert.throws(() => decodeControl(text), ProtocolError, JSON.stringify(c));
  }
});
