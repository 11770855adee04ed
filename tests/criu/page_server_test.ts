import assert from "node:assert/strict";
import {
  criuVersionInLog,
  encodePageServerIov,
  pageServerIovBytes,
  PS_IOV_CLOSE,
} from "../../src/criu/page_server.ts";

Deno.test("the page-server command is 24 bytes before CRIU 4.2 and 32 bytes from 4.2 on", () => {
  assert.equal(pageServerIovBytes("4.1.1"), 24);
  assert.equal(pageServerIovBytes("3.19"), 24);
  assert.equal(pageServerIovBytes("4.2"), 32);
  assert.equal(pageServerIovBytes("4.2.1"), 32);
  assert.equal(pageServerIovBytes("5.0"), 32);
  assert.equal(pageServerIovBytes(undefined), 32);
  const close = encodePageServerIov(PS_IOV_CLOSE, "4.2.1");
  assert.equal(close.length, 32);
  assert.equal(new DataView(close.buffer).getUint32(0, true), 0x1023);
  assert.ok(close.subarray(4).every((b) => b === 0));
  assert.equal(encodePageServerIov(PS_IOV_CLOSE, "4.1.1").length, 24);
});

Deno.test("the CRIU version comes from a dump log's first lines", () => {
  const log = "(00.000000) Version: 4.2.1 (gitid 0)\n(00.000021) Running on host\n";
  assert.equal(criuVersionInLog(log), "4.2.1");
  assert.equal(criuVersionInLog("(00.000000) Version: 4.1.1 (gitid v4.1.1)"), "4.1.1");
  assert.equal(criuVersionInLog("nothing here"), undefined);
});
