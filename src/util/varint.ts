/**
 * Unsigned LEB128 varints over JavaScript numbers (exact up to 2^53), with a growable byte sink.
 *
 * @module
 */

/** A growable byte buffer that varints, raw bytes and floats are appended to. */
export class ByteSink {
  #buf: Uint8Array;
  #view: DataView;
  #len = 0;

  /** @param initialCapacity starting size in bytes @default 256 */
  constructor(initialCapacity = 256) {
    this.#buf = new Uint8Array(initialCapacity);
    this.#view = new DataView(this.#buf.buffer);
  }

  /** Bytes written so far. */
  get length(): number {
    return this.#len;
  }

  /** Append one unsigned varint (0 ≤ value < 2^53). */
  varint(value: number): void {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`varint out of range: ${value}`);
    }
    this.#reserve(8);
    while (value >= 0x80) {
      this.#buf[this.#len++] = (value % 0x80) | 0x80;
      value = Math.floor(value / 0x80);
    }
    this.#buf[this.#len++] = value;
  }

  /** Append one byte. */
  u8(value: number): void {
    this.#reserve(1);
    this.#buf[this.#len++] = value & 0xff;
  }

  /** Append a little-endian float64. */
  f64(value: number): void {
    this.#reserve(8);
    this.#view.setFloat64(this.#len, value, true);
    this.#len += 8;
  }

  /** Append a little-endian uint32. */
  u32(value: number): void {
    this.#reserve(4);
    this.#view.setUint32(this.#len, value >>> 0, true);
    this.#len += 4;
  }

  /** Append raw bytes. */
  bytes(data: Uint8Array): void {
    this.#reserve(data.length);
    this.#buf.set(data, this.#len);
    this.#len += data.length;
  }

  /** Append a varint length and the UTF-8 bytes of a string. */
  string(text: string): void {
    const data = new TextEncoder().encode(text);
    this.varint(data.length);
    this.bytes(data);
  }

  /** A copy of the bytes written. */
  toBytes(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }

  #reserve(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }
}

/** Thrown when a {@linkcode ByteSource} runs past its end or meets a malformed value. */
export class DecodeError extends Error {
  /** @param message what was wrong, and where */
  constructor(message: string) {
    super(message);
    this.name = "DecodeError";
  }
}

/** A bounds-checked reader over bytes, the inverse of {@linkcode ByteSink}. */
export class ByteSource {
  #buf: Uint8Array;
  #view: DataView;
  /** Read position. */
  pos: number;
  #end: number;

  /**
   * @param buf bytes to read
   * @param start first byte @default 0
   * @param end one past the last byte @default buf.length
   */
  constructor(buf: Uint8Array, start = 0, end = buf.length) {
    this.#buf = buf;
    this.#view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.pos = start;
    this.#end = end;
  }

  /** Bytes left. */
  get remaining(): number {
    return this.#end - this.pos;
  }

  /** Read one unsigned varint. */
  varint(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.u8();
      result += (b & 0x7f) * scale;
      if (b < 0x80) {
        if (!Number.isSafeInteger(result)) throw new DecodeError("varint exceeds 2^53");
        return result;
      }
      scale *= 0x80;
    }
    throw new DecodeError(`varint longer than 8 bytes at offset ${this.pos}`);
  }

  /** Read one byte. */
  u8(): number {
    this.#need(1);
    return this.#buf[this.pos++];
  }

  /** Read a little-endian float64. */
  f64(): number {
    this.#need(8);
    const v = this.#view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  /** Read a little-endian uint32. */
  u32(): number {
    this.#need(4);
    const v = this.#view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  /** Read `n` raw bytes (a view, not a copy). */
  bytes(n: number): Uint8Array {
    this.#need(n);
    const out = this.#buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** Read a varint-prefixed UTF-8 string of at most `maxBytes`. */
  string(maxBytes = 1 << 16): string {
    const n = this.varint();
    if (n > maxBytes) throw new DecodeError(`string of ${n} bytes exceeds ${maxBytes}`);
    return new TextDecoder("utf-8", { fatal: true }).decode(this.bytes(n));
  }

  #need(n: number): void {
    if (n < 0 || this.pos + n > this.#end) {
      throw new DecodeError(`unexpected end of data at offset ${this.pos} (needed ${n} bytes)`);
    }
  }
}
