/**
 * The digest manifest: the source lists a process's runs and one digest per 1 MiB chunk; the
 * destination checks them over the hashes it holds itself. Any page whose held hash differs from
 * the source's is refused; the table the source keeps from before the freeze gives the same
 * digests as laying out every chunk again.
 */
import assert from "node:assert/strict";
import {
  decodeManifest,
  type HeldSegment,
  isDigestManifest,
  ManifestBuilder,
  ManifestError,
} from "../../src/engine/manifest.ts";
import {
  chunksOf,
  DIGEST_PAGES,
  DigestTable,
  type Run,
  runDigests,
  runsOfAddresses,
  withinRuns,
} from "../../src/engine/manifest_digest.ts";
import { heldOfFiles } from "../../src/engine/manifest_held.ts";
import { VerificationError } from "../../src/engine/verify_error.ts";
import type { DumpDir } from "../../src/criu/images/mod.ts";
import { pageHashes } from "../../src/native/page_hash.ts";

const PAGE = 4096;
const CHUNK = DIGEST_PAGES * PAGE;

/** Pages of a process over three chunks, with a hole and a run crossing a chunk boundary. */
const RUNS: Run[] = [[0x400000, 3], [0x400000 + CHUNK - 2 * PAGE, 4], [0x400000 + 3 * CHUNK, 5]];

function addressesOf(runs: readonly Run[]): number[] {
  return runs.flatMap(([a, n]) => Array.from({ length: n }, (_, i) => a + i * PAGE));
}

/** A distinct, deterministic hash per address. */
function hashesOf(addresses: number[]): Uint8Array {
  const out = new Uint8Array(addresses.length * 16);
  addresses.forEach((a, i) => {
    new DataView(out.buffer).setFloat64(i * 16, a, true);
    new DataView(out.buffer).setFloat64(i * 16 + 8, a * 7 + 1, true);
  });
  return out;
}

function ledgerOf(addresses: number[], hashes: Uint8Array): Map<number, Uint8Array> {
  return new Map(addresses.map((a, i) => [a, hashes.subarray(i * 16, i * 16 + 16)]));
}

/** The destination holds `addresses` with `hashes`, as one segment. */
const holding = (addresses: number[], hashes: Uint8Array) => (pid: number) =>
  pid === 7
    ? [{ addresses, hashes, from: 0, to: addresses.length } satisfies HeldSegment]
    : undefined;

function encoded(runs: Run[], hashes: Uint8Array, exact?: number[]): Uint8Array {
  const b = new ManifestBuilder();
  const addresses = addressesOf(runs);
  const ledger = ledgerOf(addresses, hashes);
  const ex = exact && {
    addresses: exact,
    hashes: new Uint8Array(exact.flatMap((a) => [...ledger.get(a)!])),
  };
  b.addDigests(7, runs, runDigests(runs, hashes), ex);
  b.add("shmem", 3, [0], new Uint8Array(16));
  assert.equal(b.pages, addresses.length + 1);
  return b.encode();
}

Deno.test("a digest manifest decodes with the destination's hashes when they match the source's", () => {
  const addresses = addressesOf(RUNS);
  const hashes = hashesOf(addresses);
  assert.deepEqual(chunksOf(RUNS), [0x400000 / CHUNK, 0x400000 / CHUNK + 1, 0x400000 / CHUNK + 3]);
  const bytes = encoded(RUNS, hashes, [addresses[1], addresses[4]]);
  assert.ok(isDigestManifest(bytes));
  const m = decodeManifest(bytes, { held: holding(addresses, hashes) });
  assert.equal(m.pages, addresses.length + 1);
  assert.deepEqual(m.processes.get(7)!.addresses, addresses);
  assert.deepEqual(m.processes.get(7)!.hashes, hashes);
  assert.equal(m.shmem.get(3)!.addresses.length, 1);
  // Held pages beyond the manifest's (a covered slot) are passed over, in two segments.
  const extra = [0x300000, ...addresses.slice(0, 5)];
  const rest = addresses.slice(5);
  const segs: HeldSegment[] = [
    { addresses: extra, hashes: hashesOf(extra), from: 0, to: extra.length },
    { addresses: rest, hashes: hashesOf(rest), from: 0, to: rest.length },
  ];
  assert.deepEqual(
    decodeManifest(bytes, { held: (pid) => (pid === 7 ? segs : undefined) }).processes.get(7)!
      .hashes,
    hashes,
  );
});

Deno.test("a page whose held hash differs from the source's is refused, whichever page it is", () => {
  const addresses = addressesOf(RUNS);
  const hashes = hashesOf(addresses);
  const bytes = encoded(RUNS, hashes);
  for (let k = 0; k < addresses.length; k++) {
    for (const byte of [0, 15]) {
      const wrong = hashes.slice();
      wrong[k * 16 + byte] ^= 1;
      assert.throws(
        () => decodeManifest(bytes, { held: holding(addresses, wrong) }),
        (e: unknown) =>
          e instanceof VerificationError && /differ from the source's/.test(e.message),
        `page ${k} byte ${byte}`,
      );
    }
  }
  // An exact page names itself.
  const wrong = hashes.slice();
  wrong[4 * 16] ^= 1;
  assert.throws(
    () =>
      decodeManifest(encoded(RUNS, hashes, [addresses[4]]), { held: holding(addresses, wrong) }),
    (e: unknown) =>
      e instanceof VerificationError &&
      e.message.includes(`page 0x${addresses[4].toString(16)} differs`),
  );
  // A page the destination does not hold, or a process it has no images of.
  assert.throws(
    () => decodeManifest(bytes, { held: holding(addresses.slice(1), hashes.slice(16)) }),
    (e: unknown) => e instanceof VerificationError && /is not in the images/.test(e.message),
  );
  assert.throws(() => decodeManifest(bytes, { held: () => undefined }), VerificationError);
  // No hashes to check on, or a malformed digest list: refused as a manifest.
  assert.throws(() => decodeManifest(bytes), ManifestError);
  const json = JSON.parse(new TextDecoder().decode(bytes));
  json.processes[0].digests = json.processes[0].digests.slice(4);
  assert.throws(
    () =>
      decodeManifest(new TextEncoder().encode(JSON.stringify(json)), {
        held: holding(addresses, hashes),
      }),
    ManifestError,
  );
  json.v = 1;
  assert.throws(
    () => decodeManifest(new TextEncoder().encode(JSON.stringify(json))),
    ManifestError,
  );
});

Deno.test("the source's digest table, brought up to date with the pages sent, equals a full layout", () => {
  const before = addressesOf(RUNS);
  const ledger = ledgerOf(before, hashesOf(before));
  const none = { addresses: [], hashes: new Uint8Array(0) };
  const table = new DigestTable(RUNS, ledger);
  assert.deepEqual(table.digests(RUNS, ledger, none), runDigests(RUNS, hashesOf(before)));
  const fromHashes = new DigestTable(RUNS, hashesOf(before));
  assert.deepEqual(fromHashes.digests(RUNS, ledger, none), runDigests(RUNS, hashesOf(before)));
  // The freeze: a page re-sent with a new hash, a new run, a page gone from the first run, and
  // a page sent that the final pages do not name (left out).
  const changed = before[5], added = 0x400000 + 10 * CHUNK, outside = 0x400000 + 20 * CHUNK;
  const sent = {
    addresses: [changed, added, outside],
    hashes: new Uint8Array(48).map((_, i) => 9 + Math.floor(i / 16)),
  };
  sent.addresses.forEach((a, i) => ledger.set(a, sent.hashes.subarray(i * 16, i * 16 + 16)));
  const after = addressesOf(RUNS).filter((a) => a !== 0x400000 + PAGE);
  after.push(added);
  const runs = runsOfAddresses(after);
  const truth = new Uint8Array(after.length * 16);
  after.forEach((a, i) => truth.set(ledger.get(a)!, i * 16));
  const within = withinRuns(sent, runs);
  assert.deepEqual(within.addresses, [changed, added]);
  assert.deepEqual(within.hashes, sent.hashes.subarray(0, 32));
  assert.deepEqual(table.digests(runs, ledger, within), runDigests(runs, truth));
  // A page re-sent but not reported as sent gives a digest the destination refuses.
  const stale = new DigestTable(runs, ledger);
  const resent = { addresses: [after[0]], hashes: new Uint8Array(16).fill(1) };
  ledger.set(after[0], resent.hashes);
  truth.set(resent.hashes, 0);
  assert.notDeepEqual(stale.digests(runs, ledger, none), runDigests(runs, truth));
  assert.deepEqual(stale.digests(runs, ledger, resent), runDigests(runs, truth));
  assert.throws(() => new DigestTable([[0x1000, 1]], new Map()), /never sent/);
});

Deno.test("flat pages files: a digest manifest is checked on the hashes of the files' bytes", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "u2cm-held-" });
  try {
    const addresses = addressesOf(RUNS);
    const data = new Uint8Array(addresses.length * PAGE).map((_, i) => (i * 7 + 3) & 0xff);
    Deno.writeFileSync(`${dir}/pages-1.img`, data);
    const dump = { memory: [{ pid: 7, pagesFile: "pages-1.img", addresses }] };
    const bytes = encoded(RUNS, pageHashes(data));
    const held = await heldOfFiles(dir, dump as unknown as DumpDir);
    assert.deepEqual(decodeManifest(bytes, { held }).processes.get(7)!.hashes, pageHashes(data));
    data[5 * PAGE + 100] ^= 1;
    Deno.writeFileSync(`${dir}/pages-1.img`, data);
    const wrong = await heldOfFiles(dir, dump as unknown as DumpDir);
    assert.throws(() => decodeManifest(bytes, { held: wrong }), VerificationError);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
