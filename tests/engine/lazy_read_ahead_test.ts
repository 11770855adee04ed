/**
 * The post-copy read-ahead's bookkeeping: which pages it asks the source for, in what sizes and
 * within what bounds, and when a daemon's request is answered from it.
 */
import assert from "node:assert/strict";
import {
  defaultMaxPages,
  type LazyRun,
  lazyRunsOf,
  ReadAhead,
} from "../../src/engine/lazy_read_ahead.ts";
import { PE_LAZY, PE_PARENT, PE_PRESENT } from "../../src/criu/images/mod.ts";

const PAGE = 4096;

/** `n` pages whose first byte names their address (page index from 0x10000). */
function pagesAt(vaddr: number, n: number): Uint8Array {
  const out = new Uint8Array(n * PAGE);
  for (let i = 0; i < n; i++) out[i * PAGE] = ((vaddr - 0x10000) / PAGE + i) & 0xff;
  return out;
}

function drainAsks(ra: ReadAhead): LazyRun[] {
  const asks: LazyRun[] = [];
  for (let r = ra.next(); r; r = ra.next()) asks.push(r);
  return asks;
}

Deno.test("the read-ahead asks for each lazy run in large requests within its bounds, and answers the daemon from what arrived", async () => {
  const ra = new ReadAhead({
    runs: [{ pid: 5, vaddr: 0x10000, nrPages: 100 }, { pid: 5, vaddr: 0x100000, nrPages: 10 }],
    requestPages: 32,
    maxRequests: 2,
    maxPages: 64,
  });
  // Two requests in flight at most, 32 pages each, never across a run's end.
  const first = drainAsks(ra);
  assert.deepEqual(first, [
    { pid: 5, vaddr: 0x10000, nrPages: 32 },
    { pid: 5, vaddr: 0x10000 + 32 * PAGE, nrPages: 32 },
  ]);
  assert.ok(ra.covers(5, 0x10000, 16) && !ra.covers(5, 0x10000 + 64 * PAGE, 1));
  // A covered request waits for its pages, then gets them.
  const taken = ra.take(5, 0x10000, 16);
  ra.arrived(first[0], 5, 0x10000, 32, pagesAt(0x10000, 32));
  assert.deepEqual(await taken, pagesAt(0x10000, 16));
  // 48 pages held (16 delivered): no room for another 32 until more are delivered.
  ra.arrived(first[1], 5, first[1].vaddr, 32, pagesAt(first[1].vaddr, 32));
  assert.deepEqual(drainAsks(ra), []);
  assert.deepEqual(await ra.take(5, 0x10000 + 16 * PAGE, 16), pagesAt(0x10000 + 16 * PAGE, 16));
  // Delivered pages are not asked again; the run's tail and the next run come next.
  assert.deepEqual(drainAsks(ra), [{ pid: 5, vaddr: 0x10000 + 64 * PAGE, nrPages: 32 }]);
  assert.equal(ra.covers(5, 0x10000, 1), false, "a delivered page is not answered twice");
});

Deno.test("the read-ahead asks again for what the source did not answer, and skips what the daemon got from the source itself", async () => {
  const ra = new ReadAhead({ runs: [{ pid: 7, vaddr: 0x10000, nrPages: 8 }], requestPages: 8 });
  const [ask] = drainAsks(ra);
  assert.deepEqual(ask, { pid: 7, vaddr: 0x10000, nrPages: 8 });
  // A daemon request waiting on pages 4..5 when the answer stops short at 4 pages.
  const waiting = ra.take(7, 0x10000 + 4 * PAGE, 2);
  ra.arrived(ask, 7, 0x10000, 4, pagesAt(0x10000, 4));
  assert.equal(
    await waiting,
    undefined,
    "a page that will not come sends the daemon to the source",
  );
  // The daemon got pages 4..5 straight from the source: counted once, not asked again.
  assert.equal(ra.deliveredElsewhere(7, 0x10000 + 4 * PAGE, 2), 2);
  assert.equal(ra.deliveredElsewhere(7, 0x10000 + 4 * PAGE, 2), 0);
  assert.deepEqual(drainAsks(ra), [{ pid: 7, vaddr: 0x10000 + 6 * PAGE, nrPages: 2 }]);
  // Pages it holds: answered from here; stopping releases the waiters and ends the asking.
  assert.deepEqual(await ra.take(7, 0x10000, 4), pagesAt(0x10000, 4));
  const late = ra.take(7, 0x10000 + 6 * PAGE, 2);
  ra.stop();
  assert.equal(await late, undefined);
  assert.equal(ra.next(), undefined);
});

Deno.test("the lazy runs of a restore's images: the entries left with the source only", () => {
  const pagemap = (entries: { vaddr: number; nrPages: number; flags: number }[]) => ({
    pagesId: 1,
    entries,
  });
  const runs = lazyRunsOf([
    {
      pid: 3,
      pagemap: pagemap([
        { vaddr: 0x1000, nrPages: 2, flags: PE_PRESENT },
        { vaddr: 0x4000, nrPages: 5, flags: PE_LAZY },
        { vaddr: 0x9000, nrPages: 1, flags: PE_LAZY | PE_PARENT },
        { vaddr: 0xa000, nrPages: 3, flags: PE_LAZY | PE_PRESENT },
      ]),
    },
    { pid: 4, pagemap: pagemap([{ vaddr: 0x20000, nrPages: 7, flags: PE_LAZY }]) },
  ]);
  assert.deepEqual(runs, [
    { pid: 3, vaddr: 0x4000, nrPages: 5 },
    { pid: 4, vaddr: 0x20000, nrPages: 7 },
  ]);
});

Deno.test("the read-ahead's default bound: a quarter of the memory available, between 64 MiB and 1 GiB", () => {
  const kib = Number(/MemAvailable:\s+(\d+) kB/.exec(Deno.readTextFileSync("/proc/meminfo"))![1]);
  const want = Math.max(16_384, Math.min(262_144, Math.floor(kib / 16)));
  // MemAvailable moves between the two reads: allow 1% of it.
  assert.ok(Math.abs(defaultMaxPages() - want) <= Math.max(1, want / 100), `${defaultMaxPages()}`);
});
