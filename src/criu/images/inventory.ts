/**
 * `inventory.img`: the dump's global facts — image version, the root task's namespace ids,
 * the pre-dump mode, the network lock method — plus fields u2cm carries along untouched.
 *
 * @module
 */
import { expectMagic, Magic, readImage, writeImage } from "./image.ts";
import { bytesField, decodeMessage, encodeMessage, type PbField, uintField } from "./protobuf.ts";

/** The inventory fields u2cm reads. */
export interface Inventory {
  /** CRIU image version (2 for every CRIU since 1.x). */
  imgVersion: number;
  /** Root task's pid namespace id, when recorded. */
  pidNsId?: number;
  /** Root task's mount namespace id, when recorded. */
  mntNsId?: number;
  /** Root task's net namespace id, when recorded. */
  netNsId?: number;
  /** Pre-dump mode (1 splice, 2 read), when the dump continued a pre-dump chain. */
  preDumpMode?: number;
  /** Network lock method (0 iptables, 1 nftables, 2 skip), when recorded. */
  networkLockMethod?: number;
  /** All fields as decoded, for a faithful re-encode. */
  fields: PbField[];
}

/** Decode `inventory.img` bytes. */
export function decodeInventory(bytes: Uint8Array, name = "inventory.img"): Inventory {
  const image = readImage(bytes, name);
  expectMagic(image, Magic.INVENTORY, name);
  if (image.entries.length !== 1) {
    throw new Error(`${name}: ${image.entries.length} entries, expected 1`);
  }
  const fields = decodeMessage(image.entries[0]);
  const imgVersion = uintField(fields, 1);
  if (imgVersion === undefined) throw new Error(`${name}: no img_version`);
  const rootIds = bytesField(fields, 3);
  const ids = rootIds ? decodeMessage(rootIds) : [];
  return {
    imgVersion,
    pidNsId: uintField(ids, 5),
    netNsId: uintField(ids, 6),
    mntNsId: uintField(ids, 9),
    preDumpMode: uintField(fields, 9),
    networkLockMethod: uintField(fields, 11),
    fields,
  };
}

/** Encode an inventory back to image bytes (from its decoded fields). */
export function encodeInventory(inventory: Inventory): Uint8Array {
  return writeImage({
    kind: "bare",
    magic: Magic.INVENTORY,
    entries: [encodeMessage(inventory.fields)],
  });
}
