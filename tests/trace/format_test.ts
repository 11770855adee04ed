import assert from "node:assert/strict";
import {
  decodeTrace,
  encodeTrace,
  readTraceFile,
  TraceFormatError,
  type TraceHeader,
  type TraceRound,
} from "../../src/trace/mod.ts";
import type { Mapping, PageSet } from "../../src/tracker/types.ts";

function header(extra: Partial<TraceHeader> = {}): TraceHeader {
  return {
    format: "u2cm-trace",
    version: 1,
    pageSize: 4096,
    backend: "hash",
    intervalMs: 100,
    startedAt: "2026-11-25T00:00:00.000Z",
    host: { kernel: "6.18", arch: "x86_64", hostname: "t", cpus: 2, memTotalBytes: 1 << 30 },
    target: { pid: 42, comm: "w", cmdline: ["w", "--x"] },
    processes: [{ pid: 42, ppid: 1, comm: "w" }],
    featureNames: ["pgfault", "ctxt"],
    accessBits: false,
    ...extra,
  };
}

const heap: Mapping = {
  id: 1,
  pid: 42,
  start: 0x5555_0000_0000,
  end: 0x5555_0010_0000,
  perms: "rw-p",
  offset: 0,
  path: "[heap]",
  kind: "heap",
};
const anon: Mapping = {
  ...heap,
  id: 2,
  start: 0x7f00_0000_0000,
  end: 0x7f00_4000_0000,
  path: "",
  kind: "anon",
};

function round(n: number, dirty: PageSet, extra: Partial<TraceRound> = {}): TraceRound {
  return {
    round: n,
    elapsedMs: n * 100.5,
    scanMs: 1.25,
    residentPages: 300,
    pids: [42],
    added: [],
    removed: [],
    dirty,
    features: new Float64Array([n * 10, n + 0.5]),
    ...extra,
  };
}

Deno.test("a trace round-trips header, mappings, rounds, features and end", () => {
  const rounds = [
    round(0, new Map([[1, Uint32Array.from([0, 1, 2, 3, 200])], [2, Uint32Array.from([5])]]), {
      added: [heap, anon],
    }),
    round(1, new Map([[2, Uint32Array.from([5, 7, 9, 10, 11, 1000])]]), { removed: [1] }),
    round(2, new Map(), { accessed: new Map([[2, Uint32Array.from([1, 2])]]) }),
  ];
  const bytes = encodeTrace(header(), rounds, { rounds: 3, reason: "rounds" });
  const trace = decodeTrace(bytes);
  assert.equal(trace.header.target.pid, 42);
  assert.equal(trace.rounds.length, 3);
  assert.deepEqual(trace.rounds[0].added, [heap, anon]);
  assert.deepEqual(trace.rounds[1].removed, [1]);
  assert.deepEqual([...trace.rounds[0].dirty.get(1)!], [0, 1, 2, 3, 200]);
  assert.deepEqual([...trace.rounds[1].dirty.get(2)!], [5, 7, 9, 10, 11, 1000]);
  assert.equal(trace.rounds[2].dirty.size, 0);
  assert.deepEqual([...trace.rounds[2].accessed!.get(2)!], [1, 2]);
  assert.equal(trace.rounds[1].elapsedMs, 100.5);
  assert.deepEqual([...trace.rounds[1].features], [10, 1.5]);
  assert.deepEqual(trace.end, { rounds: 3, reason: "rounds" });
  assert.equal(trace.mappings.size, 2);
});

Deno.test("dirty pages cost at most about one byte each, dense or scattered", () => {
  const scattered = Uint32Array.from({ length: 20_000 }, (_, i) => i * 37 + (i % 5));
  const dense = Uint32Array.from({ length: 50_000 }, (_, i) => i * 2);
  const runs = Uint32Array.from({ length: 100_000 }, (_, i) => i + Math.floor(i / 1000) * 50);
  const empty = encodeTrace(header(), [round(0, new Map())]).length;
  for (const pages of [scattered, dense, runs]) {
    const size = encodeTrace(header(), [round(0, new Map([[2, pages]]))]).length - empty;
    assert.ok(size <= pages.length + 16, `${size} bytes for ${pages.length} pages`);
    const back = decodeTrace(encodeTrace(header(), [round(0, new Map([[2, pages]]))]));
    assert.deepEqual(back.rounds[0].dirty.get(2), pages);
  }
});

Deno.test("a file cut mid-record reads up to its last complete round", () => {
  const bytes = encodeTrace(header(), [
    round(0, new Map([[1, Uint32Array.from([1])]])),
    round(1, new Map()),
  ]);
  const cut = bytes.slice(0, bytes.length - 3);
  const trace = decodeTrace(cut);
  assert.equal(trace.rounds.length, 1);
  assert.equal(trace.end, undefined);
  assert.throws(() => decodeTrace(cut, { allowTruncated: false }), TraceFormatError);
});

Deno.test("corrupt bytes are reported with the source and the problem", () => {
  const bytes = encodeTrace(header(), [round(0, new Map([[1, Uint32Array.from([1, 2, 3])]]))]);
  const flipped = bytes.slice();
  flipped[flipped.length - 8] ^= 0xff;
  assert.throws(() => decodeTrace(flipped, { source: "x.u2ct" }), /x\.u2ct: checksum mismatch/);
  assert.throws(
    () => decodeTrace(new TextEncoder().encode("hello world, not a trace")),
    /bad magic/,
  );
  const badVersion = bytes.slice();
  badVersion[4] = 9;
  assert.throws(() => decodeTrace(badVersion), /unsupported trace version 9/);
  assert.throws(() => decodeTrace(bytes.slice(0, 5)), /too short/);
});

Deno.test("headers with another page size or no feature list are rejected", () => {
  assert.throws(
    () => decodeTrace(encodeTrace(header({ pageSize: 3000 }), [])),
    /invalid page size 3000/,
  );
  const { featureNames: _, ...noFeatures } = header();
  assert.throws(
    () => decodeTrace(encodeTrace(noFeatures as TraceHeader, [])),
    /header has no feature name list/,
  );
  const bytes = encodeTrace(header({ backend: "magic" as "hash" }), []);
  assert.throws(() => decodeTrace(bytes), /unknown backend magic/);
});

Deno.test("readTraceFile reads gzip-compressed traces and names missing files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const bytes = encodeTrace(header(), [round(0, new Map([[1, Uint32Array.from([4])]]))], {
      rounds: 1,
      reason: "rounds",
    });
    const gz = new Uint8Array(
      await new Response(
        new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
          new CompressionStream("gzip"),
        ),
      ).arrayBuffer(),
    );
    await Deno.writeFile(`${dir}/t.u2ct.gz`, gz);
    const trace = await readTraceFile(`${dir}/t.u2ct.gz`);
    assert.deepEqual([...trace.rounds[0].dirty.get(1)!], [4]);
    await assert.rejects(readTraceFile(`${dir}/none.u2ct`), /none\.u2ct: cannot read/);
    await Deno.writeFile(`${dir}/bad.gz`, new Uint8Array([0x1f, 0x8b, 1, 2, 3]));
    await assert.rejects(readTraceFile(`${dir}/bad.gz`), /bad\.gz: corrupt gzip/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
