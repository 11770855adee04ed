import assert from "node:assert/strict";
import {
  type LocalPageServerKind,
  startLocalPageServer,
} from "../../src/engine/local_page_server.ts";
import { maskedPageHash } from "../../src/engine/page_allowance.ts";
import { fixture, P, session } from "./support/page_session.ts";

// The native server (native_page_server.ts, the default) request by request against the
// TypeScript one it replaces (local_page_server.ts, U2CM_LOCAL_PAGE_SERVER=ts): the same answers,
// the same refusals, word for word.

/** Both servers: the native one (the default) and the TypeScript fallback. */
const KINDS: LocalPageServerKind[] = ["native", "ts"];

for (const kind of KINDS) {
  Deno.test(`local page server (${kind}): serves the slot file's pages as CRIU's page server does, each checked`, async () => {
    const f = fixture(8);
    try {
      const server = startLocalPageServer({
        composed: f.composed,
        manifest: f.manifest,
        expectedPages: 8,
        criuVersion: "4.1.1",
      }, kind);
      assert.equal(server.kind, kind, "the server asked for does not serve");
      const got = await session(server.port, [[0x10000, 3], [0x13000, 5]]);
      const stats = await server.done;
      assert.equal(got.status, 0);
      assert.deepEqual(got.answers.map((a) => [a.vaddr, a.nr]), [[0x10000, 3], [0x13000, 5]]);
      assert.equal(got.answers[1].data[0], 4, "page 3 holds 4s");
      assert.deepEqual(
        { checked: stats.checkedPages, closed: stats.closed, requests: stats.requests },
        { checked: 8, closed: true, requests: 2 },
      );
      assert.equal(stats.mismatch, undefined);
    } finally {
      Deno.removeSync(f.dir, { recursive: true });
    }
  });

  Deno.test(`local page server (${kind}): a page changed in its slot after the image check is never sent`, async () => {
    const f = fixture(8);
    try {
      // Behind the store's recorded hashes (what the image check compares): byte 100 of page 5.
      const file = Deno.openSync(f.file, { write: true });
      file.seekSync(5 * P + 100, Deno.SeekMode.Start);
      file.writeSync(new Uint8Array([0xee]));
      file.close();
      let refused = "";
      const server = startLocalPageServer({
        composed: f.composed,
        manifest: f.manifest,
        expectedPages: 8,
        criuVersion: "4.1.1",
        onMismatch: (why) => void (refused = why),
      }, kind);
      const got = await session(server.port, [[0x10000, 4], [0x14000, 4]]);
      const stats = await server.done;
      assert.deepEqual(got.answers.map((a) => a.vaddr), [0x10000], "the bad range was sent");
      assert.equal(got.status, undefined, "the session was not cut");
      assert.match(refused, /pid 5: page 0x15000 differs from the manifest/);
      assert.equal(stats.mismatch, refused);
      assert.equal(stats.checkedPages, 4);
      assert.equal(stats.closed, false);
    } finally {
      Deno.removeSync(f.dir, { recursive: true });
    }
  });

  Deno.test(`local page server (${kind}): a range the images do not hold as one run is refused`, async () => {
    const f = fixture(4);
    try {
      const server = startLocalPageServer({
        composed: f.composed,
        manifest: f.manifest,
        expectedPages: 4,
        criuVersion: "4.1.1",
      }, kind);
      const got = await session(server.port, [[0x12000, 4]]);
      const stats = await server.done;
      assert.equal(got.answers.length, 0);
      assert.match(stats.mismatch ?? "", /page 0x12000 \(4 pages\) is not one run of the images/);
    } finally {
      Deno.removeSync(f.dir, { recursive: true });
    }
  });

  Deno.test(`local page server (${kind}): CRIU 4.2's 32-byte iovs`, async () => {
    const f = fixture(4);
    try {
      const server = startLocalPageServer({
        composed: f.composed,
        manifest: f.manifest,
        expectedPages: 4,
        criuVersion: "4.2.1",
      }, kind);
      const got = await session(server.port, [[0x11000, 2], [0x10000, 1], [0x13000, 1]], {
        iovBytes: 32,
      });
      const stats = await server.done;
      assert.equal(got.status, 0);
      assert.deepEqual(got.answers.map((a) => [a.vaddr, a.nr]), [
        [0x11000, 2],
        [0x10000, 1],
        [0x13000, 1],
      ]);
      assert.equal(got.answers[0].data[P], 3, "page 2 holds 3s");
      assert.deepEqual([stats.checkedPages, stats.requests, stats.closed], [4, 3, true]);
    } finally {
      Deno.removeSync(f.dir, { recursive: true });
    }
  });

  Deno.test(`local page server (${kind}): held, it answers nothing until released`, async () => {
    const f = fixture(4);
    try {
      const server = startLocalPageServer({
        composed: f.composed,
        manifest: f.manifest,
        expectedPages: 4,
        criuVersion: "4.1.1",
      }, kind);
      server.hold();
      const got = session(server.port, [[0x10000, 4]]);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(server.stats().checkedPages, 0, "a held server answered");
      server.release();
      const { answers, status } = await got;
      const stats = await server.done;
      assert.deepEqual([answers.length, status, stats.checkedPages], [1, 0, 4]);
    } finally {
      Deno.removeSync(f.dir, { recursive: true });
    }
  });

  Deno.test(`local page server (${kind}): closed before the daemon came, it ends without a refusal`, async () => {
    const f = fixture(2);
    try {
      let refused = "";
      const server = startLocalPageServer({
        composed: f.composed,
        manifest: f.manifest,
        expectedPages: 2,
        criuVersion: "4.1.1",
        onMismatch: (why) => void (refused = why),
      }, kind);
      server.close();
      const stats = await server.done;
      assert.deepEqual([stats.requests, stats.closed, stats.mismatch, refused], [
        0,
        false,
        undefined,
        "",
      ]);
    } finally {
      Deno.removeSync(f.dir, { recursive: true });
    }
  });

  Deno.test(`local page server (${kind}): a daemon that leaves without its CLOSE is a refusal`, async () => {
    const f = fixture(4);
    try {
      let refused = "";
      const server = startLocalPageServer({
        composed: f.composed,
        manifest: f.manifest,
        expectedPages: 4,
        criuVersion: "4.1.1",
        onMismatch: (why) => void (refused = why),
      }, kind);
      const got = await session(server.port, [[0x10000, 2]], { leave: true });
      const stats = await server.done;
      assert.equal(got.answers.length, 1);
      assert.match(refused, /the lazy-pages daemon left before every page was placed/);
      assert.equal(stats.mismatch, refused);
      assert.deepEqual([stats.checkedPages, stats.closed], [2, false]);
    } finally {
      Deno.removeSync(f.dir, { recursive: true });
    }
  });

  Deno.test(`local page server (${kind}): a page whose bytes differ only in an allowed area is served, outside it refused`, async () => {
    const f = fixture(4);
    try {
      // The source hashed page 1 (0x11000) with bytes 64..128 zeroed (a thread's rseq area);
      // the slot holds other bytes there, and page 2 (0x12000) differs outside its area.
      const areas: [number, number][] = [[0x11000 + 64, 0x11000 + 128], [0x12000, 0x12010]];
      const slot = Deno.readFileSync(f.file);
      const list = f.manifest.processes.get(5)!;
      list.hashes.set(maskedPageHash(slot.subarray(P, 2 * P), 0x11000, [areas[0]]), 16);
      slot.fill(0x77, P + 64, P + 128);
      slot[2 * P + 100] ^= 1;
      Deno.writeFileSync(f.file, slot);
      let refused = "";
      const server = startLocalPageServer({
        composed: f.composed,
        manifest: f.manifest,
        expectedPages: 4,
        allowance: new Map([[5, areas]]),
        criuVersion: "4.1.1",
        onMismatch: (why) => void (refused = why),
      }, kind);
      const got = await session(server.port, [[0x10000, 2], [0x12000, 1]]);
      const stats = await server.done;
      assert.deepEqual(got.answers.map((a) => [a.vaddr, a.nr]), [[0x10000, 2]]);
      assert.equal(got.answers[0].data[P + 64], 0x77, "the page was not sent as the slot holds it");
      assert.match(refused, /pid 5: page 0x12000 differs from the manifest/);
      assert.equal(stats.checkedPages, 2);
    } finally {
      Deno.removeSync(f.dir, { recursive: true });
    }
  });

  Deno.test(`local page server (${kind}): a page the manifest does not name is refused`, async () => {
    const f = fixture(4);
    try {
      const list = f.manifest.processes.get(5)!;
      f.manifest.processes.set(5, {
        addresses: list.addresses.slice(0, 2),
        hashes: list.hashes.slice(0, 32),
      });
      const server = startLocalPageServer({
        composed: f.composed,
        manifest: f.manifest,
        expectedPages: 4,
        criuVersion: "4.1.1",
      }, kind);
      const got = await session(server.port, [[0x11000, 2]]);
      const stats = await server.done;
      assert.equal(got.answers.length, 0);
      assert.match(stats.mismatch ?? "", /^pid 5: page 0x12000 is not in the manifest$/);
    } finally {
      Deno.removeSync(f.dir, { recursive: true });
    }
  });
}

Deno.test("local page server (native): after a refusal the daemon's connection is cut only once onMismatch is done", async () => {
  const f = fixture(4);
  try {
    Deno.writeFileSync(f.file, new Uint8Array([0xee]), { append: false, create: false });
    let ended = 0;
    const server = startLocalPageServer({
      composed: f.composed,
      manifest: f.manifest,
      expectedPages: 4,
      criuVersion: "4.1.1",
      // (Where the restored copy is ended: its faults wait for the daemon's answer meanwhile.)
      onMismatch: () => new Promise((r) => setTimeout(() => r(void (ended = Date.now())), 300)),
    }, "native");
    const got = await session(server.port, [[0x10000, 1]]);
    const cutAt = Date.now();
    const stats = await server.done;
    assert.equal(got.answers.length, 0);
    assert.ok(ended > 0 && cutAt >= ended, "the daemon saw the cut before onMismatch was done");
    assert.match(stats.mismatch ?? "", /the slot file ends early|differs from the manifest/);
  } finally {
    Deno.removeSync(f.dir, { recursive: true });
  }
});
