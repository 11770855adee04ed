import assert from "node:assert/strict";
import fc from "fast-check";
import { ProtocolError } from "../../src/peer/errors.ts";
import {
  decodeControl,
  encodeControl,
  MAX_CONTROL_BYTES,
  PROTOCOL_VERSION,
} from "../../src/peer/protocol.ts";
import { propertyRuns } from "../support/env.ts";

const caps = {
  arch: "x86_64",
  kernel: "6.18",
  criu: null,
  trackerBackends: ["hash"],
  freeMemoryBytes: 1,
  freeDiskBytes: 2,
  transports: ["ws" as const],
  version: "0.1.0",
};

function throwsProtocolError(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ProtocolError, `expected ProtocolError, got ${(e as Error)?.stack}`);
    return;
  }
  assert.fail("expected a ProtocolError");
}

Deno.test("control messages round-trip through encode and decode", () => {
  const msgs = [
    { type: "prepare", migrationId: "m-1", stream: 1, expectedBytes: 4096, resume: false },
    { type: "ack", migrationId: "m-1", stream: 1, seq: 3, bytesStored: 8192, pages: 2 },
    { type: "welcome", signature: "A".repeat(86), session: "s1", capabilities: caps },
    { type: "restore", migrationId: "m_2", request: { images: "x", opts: [1, { a: null }] } },
    { type: "restoreResult", migrationId: "m_2", ok: true, pid: 77, restoreMs: 12.5 },
    { type: "abort", migrationId: "m_2", reason: "source gave up" },
    { type: "stopCopy", migrationId: "m_2", phase: "start" },
    { type: "progress", migrationId: "m_2", bytesSent: 10, round: 2 },
  ] as const;
  for (const m of msgs) {
    const text = encodeControl(m);
    assert.deepEqual(decodeControl(text), { v: PROTOCOL_VERSION, ...m });
  }
});

Deno.test("bad control messages are typed errors", () => {
  const bad = [
    "",
    "{",
    "null",
    "[]",
    '{"v":2,"type":"ack"}',
    '{"v":1,"type":"nope"}',
    '{"v":1,"type":"prepare","migrationId":"../x","stream":1,"expectedBytes":1,"resume":false}',
    '{"v":1,"type":"prepare","migrationId":"a","stream":0,"expectedBytes":1,"resume":false}',
    '{"v":1,"type":"prepare","migrationId":"a","stream":1,"expectedBytes":-1,"resume":false}',
    '{"v":1,"type":"prepare","migrationId":"a","stream":1,"expectedBytes":1e300,"resume":false}',
    '{"v":1,"type":"auth","publicKey":"x","nonce":"y","signature":"z"}',
    " ".repeat(MAX_CONTROL_BYTES + 1),
  ];
  for (const text of bad) throwsProtocolError(() => decodeControl(text));
  // Deep restore requests are refused.
  let deep: unknown = 1;
  for (let i = 0; i < 20; i++) deep = { a: deep };
  throwsProtocolError(() =>
    decodeControl(JSON.stringify({ v: 1, type: "restore", migrationId: "m", request: deep }))
  );
  assert.throws(() => encodeControl({ type: "abort", migrationId: "a/b", reason: "" }));
});

Deno.test("property: arbitrary text and JSON never crash the control decoder", () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 400 }), (text) => {
      throwsProtocolError(() => decodeControl(text));
    }),
    { numRuns: propertyRuns(2000) },
  );
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 6 }), (value) => {
      try {
        decodeControl(JSON.stringify(value));
      } catch (e) {
        assert.ok(e instanceof ProtocolError);
      }
    }),
    { numRuns: propertyRuns(2000) },
  );
});

Deno.test("property: mutated valid messages decode or fail typed", () => {
  const valid = encodeControl({
    type: "prepare",
    migrationId: "m-1",
    stream: 1,
    expectedBytes: 4096,
    resume: false,
  });
  fc.assert(
    fc.property(fc.nat(), fc.string({ minLength: 1, maxLength: 3 }), (pos, insert) => {
      const at = pos % valid.length;
      const text = valid.slice(0, at) + insert + valid.slice(at + 1);
      try {
        const m = decodeControl(text);
        assert.equal(m.v, 1);
      } catch (e) {
        assert.ok(e instanceof ProtocolError);
      }
    }),
    { numRuns: propertyRuns(2000) },
  );
});
