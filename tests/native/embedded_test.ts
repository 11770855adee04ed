import assert from "node:assert/strict";
import { ensureShim } from "../../src/native/build.ts";
import { embeddedShim } from "../../src/native/embedded.ts";

Deno.test("an embedded shim is extracted once into the cache, keyed by its hash, and loads", () => {
  const cache = Deno.makeTempDirSync({ prefix: "u2cm-embedded-" });
  try {
    const source = ensureShim();
    const path = embeddedShim({ standalone: true, source, cache });
    assert.ok(path, "a path is returned");
    assert.match(path, new RegExp(`^${cache}/shim/libu2cm-\\w+-embedded-[0-9a-f]{16}\\.so$`));
    assert.deepEqual(Deno.readFileSync(path), Deno.readFileSync(source));
    const first = Deno.statSync(path).mtime?.getTime();
    const again = embeddedShim({ standalone: true, source, cache });
    assert.equal(again, path);
    assert.equal(Deno.statSync(path).mtime?.getTime(), first, "not rewritten on the second run");
    const lib = Deno.dlopen(path, { u2cm_abi_version: { parameters: [], result: "i32" } });
    try {
      assert.equal(lib.symbols.u2cm_abi_version(), 1);
    } finally {
      lib.close();
    }
  } finally {
    Deno.removeSync(cache, { recursive: true });
  }
});

Deno.test("from source, or with nothing embedded, there is no embedded shim", () => {
  const cache = Deno.makeTempDirSync({ prefix: "u2cm-embedded-" });
  try {
    assert.equal(embeddedShim({ standalone: false, source: ensureShim(), cache }), undefined);
    assert.equal(
      embeddedShim({ standalone: true, source: `${cache}/absent.so`, cache }),
      undefined,
    );
    assert.deepEqual([...Deno.readDirSync(cache)], []);
  } finally {
    Deno.removeSync(cache, { recursive: true });
  }
});
