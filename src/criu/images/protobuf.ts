/**
 * A minimal protobuf wire-format codec: enough to read and write the few CRIU image entries
 * u2cm needs (pagemap, inventory, pstree) without generated code. A message is a list of
 * fields in wire order; unknown fields survive a decode/encode round trip unchanged.
 *
 * @example
 * ```ts
 * const bytes = encodeMessage([{ field: 1, wire: 0, value: 4096n }]);
 * const fields = decodeMessage(bytes); // [{ field: 1, wire: 0, value: 4096n }]
 * ```
 *
 * @module
 */

/** Protobuf wire types: varint, 64-bit, length-delimited, 32-bit. */
export type WireType = 0 | 1 | 2 | 5;

/** One field occurrence of a message. Varints and fixed64 are bigints; fixed32 a number. */
export type PbField =
  | { field: number; wire: 0 | 1; value: bigint }
  | { field: number; wire: 2; value: Uint8Array }
  | { field: number; wire: 5; value: number };

/** Raised for malformed protobuf bytes. */
export class ProtobufError extends Error {
  /** @param message what is wrong, with the byte offset */
  constructor(message: string) {
    super(message);
    this.name = "ProtobufError";
  }
}

/** Decode one message into its fields, in wire order. */
export function decodeMessage(bytes: Uint8Array): PbField[] {
  const fields: PbField[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (pos >= bytes.length) throw new ProtobufError(`truncated varint at byte ${pos}`);
      const b = bytes[pos++];
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result & 0xffff_ffff_ffff_ffffn;
      shift += 7n;
    }
    throw new ProtobufError(`varint longer than 10 bytes at byte ${pos}`);
  };
  while (pos < bytes.length) {
    const start = pos;
    const key = varint();
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (field === 0) throw new ProtobufError(`field number 0 at byte ${start}`);
    switch (wire) {
      case 0:
        fields.push({ field, wire, value: varint() });
        break;
      case 1:
        if (pos + 8 > bytes.length) throw new ProtobufError(`truncated fixed64 at byte ${pos}`);
        fields.push({ field, wire, value: view.getBigUint64(pos, true) });
        pos += 8;
        break;
      case 2: {
        const len = Number(varint());
        if (pos + len > bytes.length) {
          throw new ProtobufError(`length ${len} at byte ${pos} runs past the message end`);
        }
        fields.push({ field, wire, value: bytes.subarray(pos, pos + len) });
        pos += len;
        break;
      }
      case 5:
        if (pos + 4 > bytes.length) throw new ProtobufError(`truncated fixed32 at byte ${pos}`);
        fields.push({ field, wire, value: view.getUint32(pos, true) });
        pos += 4;
        break;
      default:
        throw new ProtobufError(`unsupported wire type ${wire} at byte ${start}`);
    }
  }
  return fields;
}

/** Encode fields, in the given order, into one message. */
export function encodeMessage(fields: PbField[]): Uint8Array {
  const out: number[] = [];
  const varint = (v: bigint) => {
    let x = BigInt.asUintN(64, v);
    while (x >= 0x80n) {
      out.push(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    out.push(Number(x));
  };
  const chunks: Uint8Array[] = [];
  const flush = () => {
    if (out.length) chunks.push(Uint8Array.from(out.splice(0)));
  };
  for (const f of fields) {
    varint(BigInt(f.field * 8 + f.wire));
    if (f.wire === 0) varint(f.value);
    else if (f.wire === 1) {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, f.value), true);
      out.push(...b);
    } else if (f.wire === 5) {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setUint32(0, f.value >>> 0, true);
      out.push(...b);
    } else if (f.wire === 2) {
      varint(BigInt(f.value.length));
      flush();
      chunks.push(f.value);
    }
  }
  flush();
  const total = chunks.reduce((n, c) => n + c.length, 0);
  const result = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    result.set(c, at);
    at += c.length;
  }
  return result;
}

/** The last varint value of `field` as a number (exact below 2^53), or undefined. */
export function uintField(fields: PbField[], field: number): number | undefined {
  for (let i = fields.length - 1; i >= 0; i--) {
    const f = fields[i];
    if (f.field === field && (f.wire === 0 || f.wire === 1)) return Number(f.value);
    if (f.field === field && f.wire === 5) return f.value;
  }
  return undefined;
}

/** Every varint value of a repeated `field` (packed or not), as numbers. */
export function repeatedUint(fields: PbField[], field: number): number[] {
  const out: number[] = [];
  for (const f of fields) {
    if (f.field !== field) continue;
    if (f.wire === 0) out.push(Number(f.value));
    else if (f.wire === 2) {
      for (const p of decodePackedVarints(f.value)) out.push(p);
    }
  }
  return out;
}

/** The bytes of the last length-delimited `field` (sub-message or string), or undefined. */
export function bytesField(fields: PbField[], field: number): Uint8Array | undefined {
  for (let i = fields.length - 1; i >= 0; i--) {
    const f = fields[i];
    if (f.field === field && f.wire === 2) return f.value;
  }
  return undefined;
}

function decodePackedVarints(bytes: Uint8Array): number[] {
  const out: number[] = [];
  let pos = 0;
  while (pos < bytes.length) {
    let v = 0;
    let mul = 1;
    for (let i = 0;; i++) {
      if (pos >= bytes.length || i >= 10) throw new ProtobufError("bad packed varint");
      const b = bytes[pos++];
      v += (b & 0x7f) * mul;
      mul *= 128;
      if ((b & 0x80) === 0) break;
    }
    out.push(v);
  }
  return out;
}
