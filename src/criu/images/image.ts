/**
 * The CRIU image container: a 32-bit magic (most images: IMG_COMMON_MAGIC then the image's own
 * magic; service files: IMG_SERVICE_MAGIC then theirs; inventory: its magic alone), followed by
 * entries, each a little-endian 32-bit length and that many protobuf bytes. Raw images
 * (`pages-N.img`) have no header at all and are not handled here.
 *
 * @module
 */

/** Magic at the head of ordinary images. */
export const IMG_COMMON_MAGIC = 0x54564319;
/** Magic at the head of service files (stats, irmap cache). */
export const IMG_SERVICE_MAGIC = 0x55105940;

/** Image magics u2cm reads. */
export const Magic = {
  INVENTORY: 0x58313116,
  PSTREE: 0x50273030,
  PAGEMAP: 0x56084025,
  CORE: 0x55053847,
  MM: 0x57492820,
  STATS: 0x57093306,
  FILES: 0x56303138,
  MEMFD_INODE: 0x48453499,
} as const;

/** A decoded image container. */
export interface CriuImage {
  /** Which header it had. */
  kind: "common" | "service" | "bare";
  /** The image's own magic. */
  magic: number;
  /** The protobuf bytes of each entry, in file order. */
  entries: Uint8Array[];
}

/** Raised for a malformed image file. */
export class ImageFormatError extends Error {
  /** @param message what is wrong */
  constructor(message: string) {
    super(message);
    this.name = "ImageFormatError";
  }
}

/** Split an image file into its header and entries. */
export function readImage(bytes: Uint8Array, name = "image"): CriuImage {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 4) throw new ImageFormatError(`${name}: ${bytes.length} bytes, no magic`);
  const first = view.getUint32(0, true);
  let kind: CriuImage["kind"] = "bare";
  let magic = first;
  let pos = 4;
  if (first === IMG_COMMON_MAGIC || first === IMG_SERVICE_MAGIC) {
    if (bytes.length < 8) throw new ImageFormatError(`${name}: truncated after the header magic`);
    kind = first === IMG_COMMON_MAGIC ? "common" : "service";
    magic = view.getUint32(4, true);
    pos = 8;
  }
  const entries: Uint8Array[] = [];
  while (pos < bytes.length) {
    if (pos + 4 > bytes.length) throw new ImageFormatError(`${name}: truncated length at ${pos}`);
    const len = view.getUint32(pos, true);
    pos += 4;
    if (pos + len > bytes.length) {
      throw new ImageFormatError(`${name}: entry of ${len} bytes at ${pos - 4} runs past the end`);
    }
    entries.push(bytes.subarray(pos, pos + len));
    pos += len;
  }
  return { kind, magic, entries };
}

/** Join a header and entries into image file bytes. */
export function writeImage(image: CriuImage): Uint8Array {
  const head = image.kind === "bare" ? 4 : 8;
  const total = head + image.entries.reduce((n, e) => n + 4 + e.length, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let pos = 0;
  if (image.kind !== "bare") {
    view.setUint32(0, image.kind === "common" ? IMG_COMMON_MAGIC : IMG_SERVICE_MAGIC, true);
    pos = 4;
  }
  view.setUint32(pos, image.magic, true);
  pos += 4;
  for (const e of image.entries) {
    view.setUint32(pos, e.length, true);
    out.set(e, pos + 4);
    pos += 4 + e.length;
  }
  return out;
}

/** Check an image's magic; throws {@linkcode ImageFormatError} naming the file otherwise. */
export function expectMagic(image: CriuImage, magic: number, name: string): void {
  if (image.magic !== magic) {
    throw new ImageFormatError(
      `${name}: magic 0x${image.magic.toString(16)}, expected 0x${magic.toString(16)}`,
    );
  }
}
