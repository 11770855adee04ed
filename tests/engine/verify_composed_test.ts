import assert from "node:assert/strict";
import type { ComposeResult } from "../../src/engine/lazy_images.ts";
import { decodeManifest, ManifestBuilder } from "../../src/engine/manifest.ts";
import { checkComposed } from "../../src/engine/verify_composed.ts";

const P = 4096;
const h = (n: number) => new Uint8Array(16).fill(n);

/** A composed layout: `file` pages from the slot file, `parent` pages, with hash bytes = tag. */
function composed(file: [number, number][], parent: [number, number][], covered: number[] = []) {
  const all = [...file, ...parent];
  const hashes = new Uint8Array(all.length * 16);
  all.forEach(([, tag], i) => hashes.set(h(tag), i * 16));
  const result: ComposeResult = {
    inPlace: file.length,
    copied: parent.length,
    processes: new Map([[1, {
      addresses: all.map(([a]) => a),
      fileCount: file.length,
      hashes,
      covered: new Set(covered),
      page: () => Promise.resolve(new Uint8Array(P)),
      pagesFile: "/nonexistent/pages-1.img",
    }]]),
  };
  return result;
}

function manifest(pages: [number, number][]) {
  const b = new ManifestBuilder();
  const hashes = new Uint8Array(pages.length * 16);
  pages.forEach(([, tag], i) => hashes.set(h(tag), i * 16));
  b.add("process", 1, pages.map(([a]) => a), hashes);
  return decodeManifest(b.encode());
}

Deno.test("the composed check walks slot-file and parent pages against the manifest, covered slots aside", () => {
  const m = manifest([[1 * P, 1], [2 * P, 2], [4 * P, 4], [5 * P, 5]]);
  // 1 and 4 in the file (3 a covered slot between them), 2 and 5 in the parent.
  const c = composed([[1 * P, 1], [3 * P, 9], [4 * P, 4]], [[2 * P, 2], [5 * P, 5]], [3 * P]);
  assert.equal(checkComposed(c, m), 4);
  // A page whose slot holds other bytes.
  const bad = composed([[1 * P, 1], [3 * P, 9], [4 * P, 7]], [[2 * P, 2], [5 * P, 5]], [3 * P]);
  assert.throws(() => checkComposed(bad, m), /page 0x4000 differs in the images/);
  // A page the images lack, and one the manifest does not name (not a covered slot).
  const lacking = composed([[1 * P, 1], [4 * P, 4]], [[5 * P, 5]]);
  assert.throws(() => checkComposed(lacking, m), /page 0x2000 is not in the images/);
  const extra = composed([[1 * P, 1], [3 * P, 9], [4 * P, 4]], [[2 * P, 2], [5 * P, 5]]);
  assert.throws(
    () => checkComposed(extra, m),
    /hold page 0x3000, which the manifest does not name/,
  );
  // A covered slot the manifest names is not its page.
  const m3 = manifest([[1 * P, 1], [2 * P, 2], [3 * P, 9], [4 * P, 4], [5 * P, 5]]);
  assert.throws(() => checkComposed(c, m3), /page 0x3000 is a covered slot/);
});
