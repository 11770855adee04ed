import assert from "node:assert/strict";
import { PagesImage } from "../../src/engine/pages_image.ts";

const P = 4096;
const pages = (...fill: number[]) => {
  const out = new Uint8Array(fill.length * P);
  fill.forEach((v, i) => out.fill(v, i * P, (i + 1) * P));
  return out;
};

Deno.test("PagesImage patches pages in place and keeps the ascending prefix of first arrivals", () => {
  const dir = Deno.makeTempDirSync({ prefix: "u2cm-image-" });
  const image = new PagesImage(`${dir}/image`);
  try {
    image.put(1, [0x1000, 0x2000, 0x3000], pages(1, 2, 3));
    image.put(1, [0x2000], pages(9)); // rewritten: same slot
    image.put(1, [0x0000], pages(7)); // out of order: a slot after the prefix
    image.put(1, [0x4000], pages(4)); // the prefix stays cut
    const layout = image.layout(1)!;
    assert.deepEqual(Array.from(layout.ascending), [0x1000, 0x2000, 0x3000]);
    const file = Deno.readFileSync(layout.path);
    assert.equal(file.length, 5 * P);
    assert.deepEqual([0, 1, 2, 3, 4].map((i) => file[i * P]), [1, 9, 3, 7, 4]);
    // Only the slot patched after its first arrival is marked (the working set).
    assert.deepEqual([0, 1, 2, 3, 4].map((i) => layout.rewritten?.(i)), [
      false,
      true,
      false,
      false,
      false,
    ]);
    assert.equal(image.layout(2), undefined);
  } finally {
    image.close();
    Deno.removeSync(dir, { recursive: true });
  }
});
