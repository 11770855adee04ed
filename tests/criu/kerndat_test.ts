/**
 * The kerndat cache u2cm lets CRIU keep on a host whose /run is not tmpfs: real CRIU loads it,
 * and it is remade after what invalidates it (a reboot wiping the tmpfs, another CRIU build, a
 * new boot id in u2cm's stamp). Uses the host's real /run/criu.kdat (CRIU reads no other place)
 * and puts back what it found.
 */
import assert from "node:assert/strict";
import {
  CRIU_KDAT_FILE,
  ensureKerndatCache,
  fsTypeOf,
  KDAT_DIR,
  removeKerndatCache,
} from "../../src/criu/kerndat.ts";
import { requireCriuBinary } from "./support.ts";

const CACHE = `${KDAT_DIR}/criu.kdat`;

/** What one real CRIU start says about the cache in its log. */
async function criuStart(criu: string): Promise<"loaded" | "absent" | "stale" | string> {
  const dir = await Deno.makeTempDir({ prefix: "u2cm-kdat-test-" });
  try {
    await new Deno.Command(criu, {
      args: ["check", "-v4", "-o", `${dir}/check.log`],
      stdout: "null",
      stderr: "null",
    }).output();
    const log = await Deno.readTextFile(`${dir}/check.log`);
    if (log.includes(`Loaded kdat cache from ${CRIU_KDAT_FILE}`)) return "loaded";
    if (log.includes(`File ${CRIU_KDAT_FILE} does not exist`)) return "absent";
    if (log.includes(`Stale ${CRIU_KDAT_FILE} file`)) return "stale";
    return log.split("\n").slice(0, 6).join("\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function isLink(path: string): boolean {
  try {
    return Deno.lstatSync(path).isSymlink;
  } catch {
    return false;
  }
}

Deno.test("CRIU loads the kerndat cache, and it is remade after what invalidates it", async () => {
  const criu = requireCriuBinary();
  if (fsTypeOf("/run") === "tmpfs") {
    // CRIU keeps its cache by itself here: u2cm leaves it alone.
    assert.equal(await ensureKerndatCache({ criu }), "criu");
    await criuStart(criu);
    assert.equal(await criuStart(criu), "loaded");
    return;
  }
  const hadOurs = isLink(CRIU_KDAT_FILE) && Deno.readLinkSync(CRIU_KDAT_FILE) === CACHE;
  try {
    assert.ok(["made", "cached"].includes(await ensureKerndatCache({ criu })));
    assert.equal(Deno.readLinkSync(CRIU_KDAT_FILE), CACHE);
    assert.equal(await criuStart(criu), "loaded");
    assert.equal(await ensureKerndatCache({ criu }), "cached");

    // A reboot (the only way to another kernel) wipes the tmpfs: the link dangles, CRIU finds
    // no cache and probes (it cannot save on the non-tmpfs /run); ensure makes a new cache.
    await Deno.remove(KDAT_DIR, { recursive: true });
    assert.equal(await criuStart(criu), "absent");
    assert.equal(await ensureKerndatCache({ criu }), "made");
    assert.equal(await criuStart(criu), "loaded");

    // A cache written by another CRIU build (its second magic is that build's time): stale to
    // CRIU, which drops the link and probes.
    const bytes = await Deno.readFile(CACHE);
    bytes[4] ^= 0xff;
    await Deno.writeFile(CACHE, bytes);
    assert.equal(await criuStart(criu), "stale");
    assert.equal(isLink(CRIU_KDAT_FILE), false, "CRIU removes the stale cache's link");
    assert.equal(await ensureKerndatCache({ criu }), "made");
    assert.equal(await criuStart(criu), "loaded");

    // u2cm's own stamp: another boot id (or CRIU binary) than the cache was made on remakes it.
    const stamp = JSON.parse(await Deno.readTextFile(`${KDAT_DIR}/stamp.json`));
    await Deno.writeTextFile(`${KDAT_DIR}/stamp.json`, JSON.stringify({ ...stamp, bootId: "x" }));
    assert.equal(await ensureKerndatCache({ criu }), "made");
    const touched = JSON.parse(await Deno.readTextFile(`${KDAT_DIR}/stamp.json`));
    assert.equal(touched.bootId, stamp.bootId);
    assert.equal(await criuStart(criu), "loaded");

    // A cache directory others can write (planted in the world-writable /dev/shm) is not used.
    await Deno.chmod(KDAT_DIR, 0o777);
    assert.equal(await ensureKerndatCache({ criu }), "unavailable");
    assert.equal(isLink(CRIU_KDAT_FILE), false, "no link to a directory others can write");
    await Deno.chmod(KDAT_DIR, 0o700);
    assert.equal(await ensureKerndatCache({ criu }), "made");
    assert.equal(await criuStart(criu), "loaded");

    // Off: nothing is made.
    Deno.env.set("U2CM_KDAT_CACHE", "off");
    try {
      assert.equal(await ensureKerndatCache({ criu }), "unavailable");
    } finally {
      Deno.env.delete("U2CM_KDAT_CACHE");
    }
  } finally {
    if (!hadOurs) await removeKerndatCache();
  }
});

Deno.test("a /run/criu.kdat that is not u2cm's link is left alone", async () => {
  const criu = requireCriuBinary();
  // A stand-in for CRIU's place (on /tmp, not tmpfs here), and a cache directory on tmpfs.
  const run = await Deno.makeTempDir({ prefix: "u2cm-kdat-test-" });
  const dir = await Deno.makeTempDir({ dir: "/dev/shm", prefix: "u2cm-kdat-test-" });
  try {
    // A plain file there is CRIU's own cache (or someone's): never replaced nor removed.
    const link = `${run}/criu.kdat`;
    await Deno.writeTextFile(link, "not ours");
    assert.equal(await ensureKerndatCache({ criu, link, dir }), "criu");
    assert.equal(await Deno.readTextFile(link), "not ours");
    await removeKerndatCache({ link, dir });
    assert.equal(await Deno.readTextFile(link), "not ours");
    // A link to somewhere else is not u2cm's either.
    await Deno.remove(link);
    await Deno.symlink("/nonexistent/criu.kdat", link);
    assert.equal(await ensureKerndatCache({ criu, link, dir }), "criu");
    await removeKerndatCache({ link, dir });
    assert.equal(Deno.readLinkSync(link), "/nonexistent/criu.kdat");
  } finally {
    await Deno.remove(run, { recursive: true });
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
