/**
 * AES-256-GCM for the sealed bulk stream (sealed_stream.ts), from the system's OpenSSL
 * (`libcrypto.so.3`, loaded with `Deno.dlopen`). WebCrypto's AES-GCM runs at about 0.5 GB/s here,
 * OpenSSL's at about 2.4 GB/s, and Deno's TLS reads cost 16 384 calls per 256 MiB: that is why the
 * bulk stream seals its own records. {@linkcode loadAead} answers null when the library is missing;
 * the channel then keeps every frame on WebSocket over TLS.
 *
 * Nonces are 12 bytes: a 4-byte direction label and a 64-bit record counter, never reused under
 * one key (each key seals one connection in one direction). The 4-byte record length is the
 * additional authenticated data.
 *
 * @example
 * ```ts
 * const aead = loadAead();
 * if (aead) {
 *   const key = crypto.getRandomValues(new Uint8Array(32));
 *   const sealer = aead.sealer(key, 1);
 *   const out = new Uint8Array(4 + 3 + 16);
 *   sealer.seal([new Uint8Array([1, 2, 3])], out); // out: length · ciphertext · tag
 *   aead.opener(key, 1).open(out.subarray(0, 4), out.subarray(4, 7), out.subarray(7)); // true
 * }
 * ```
 *
 * @module
 */

/** Bytes of a key. */
export const KEY_BYTES = 32;
/** Bytes of a GCM tag. */
export const TAG_BYTES = 16;

const EVP_CTRL_GCM_GET_TAG = 0x10;
/** Parts at least this large are encrypted off the event loop's thread by the async calls. */
const ASYNC_MIN_BYTES = 64 * 1024;
const EVP_CTRL_GCM_SET_TAG = 0x11;

const SYMBOLS = {
  EVP_CIPHER_CTX_new: { parameters: [], result: "pointer" },
  EVP_CIPHER_CTX_free: { parameters: ["pointer"], result: "void" },
  EVP_aes_256_gcm: { parameters: [], result: "pointer" },
  EVP_EncryptInit_ex: {
    parameters: ["pointer", "pointer", "pointer", "buffer", "buffer"],
    result: "i32",
  },
  EVP_EncryptUpdate: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  EVP_EncryptFinal_ex: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  EVP_DecryptInit_ex: {
    parameters: ["pointer", "pointer", "pointer", "buffer", "buffer"],
    result: "i32",
  },
  EVP_DecryptUpdate: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  // The bulk of a record, on a thread of Deno's blocking pool: the event loop reads the next
  // record (or lays out the next chunk) meanwhile.
  EncryptUpdateBulk: {
    name: "EVP_EncryptUpdate",
    parameters: ["pointer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
    nonblocking: true,
  },
  DecryptUpdateBulk: {
    name: "EVP_DecryptUpdate",
    parameters: ["pointer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
    nonblocking: true,
  },
  EVP_DecryptFinal_ex: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  EVP_CIPHER_CTX_ctrl: { parameters: ["pointer", "i32", "i32", "buffer"], result: "i32" },
} as const;

type Lib = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** Seals records of one direction of one connection, counting nonces from 0. */
export interface Sealer {
  /**
   * Write one record into `out`: the u32 (LE) length of the concatenated `parts`, their
   * ciphertext, the tag. `out` needs 4 + length + 16 bytes. Returns the bytes written.
   */
  seal(parts: Uint8Array[], out: Uint8Array): number;
  /**
   * {@linkcode Sealer.seal}, encrypting parts of 64 KiB and more off the event loop's thread.
   * No other call on this sealer may start before it settles.
   */
  sealAsync(parts: Uint8Array[], out: Uint8Array): Promise<number>;
  /** Records sealed so far. */
  readonly records: number;
  /** Free the cipher context. */
  close(): void;
}

/** Opens the records of a {@linkcode Sealer} with the same key and label, in order. */
export interface Opener {
  /**
   * Decrypt `body` in place and check `tag` against `head` (the 4-byte length) and `body`;
   * false when the record is forged, corrupted, replayed or out of order (the body then holds
   * garbage and the stream must be dropped).
   */
  open(head: Uint8Array, body: Uint8Array, tag: Uint8Array): boolean;
  /**
   * {@linkcode Opener.open}, decrypting bodies of 64 KiB and more off the event loop's thread.
   * No other call on this opener may start before it settles.
   */
  openAsync(head: Uint8Array, body: Uint8Array, tag: Uint8Array): Promise<boolean>;
  /** Free the cipher context. */
  close(): void;
}

/** The AEAD, once loaded. */
export interface Aead {
  /** A sealer for `key` (32 bytes) under direction `label`. */
  sealer(key: Uint8Array, label: number): Sealer;
  /** An opener for `key` under direction `label`. */
  opener(key: Uint8Array, label: number): Opener;
}

let loaded: Aead | null | undefined;

/**
 * OpenSSL's AES-256-GCM, or null when `libcrypto.so.3` cannot be loaded (or `$U2CM_BULK` is
 * `ws`, which keeps the channel on WebSocket alone).
 */
export function loadAead(): Aead | null {
  if (loaded !== undefined) return loaded;
  if (Deno.env.get("U2CM_BULK") === "ws") return loaded = null;
  try {
    const aead = new OpenSslAead(Deno.dlopen("libcrypto.so.3", SYMBOLS).symbols);
    loaded = selfTest(aead) ? aead : null;
  } catch {
    loaded = null;
  }
  return loaded;
}

class OpenSslAead implements Aead {
  readonly #cipher: Deno.PointerValue;
  constructor(readonly lib: Lib) {
    this.#cipher = lib.EVP_aes_256_gcm();
  }

  sealer(key: Uint8Array, label: number): Sealer {
    const { lib } = this;
    const ctx = this.#context(key, label, true);
    const iv = nonceBuffer(label);
    const outl = new Int32Array(1);
    let records = 0;
    const begin = (parts: Uint8Array[], out: Uint8Array): number => {
      let n = 0;
      for (const p of parts) n += p.length;
      if (out.length < 4 + n + TAG_BYTES) throw new RangeError("sealed record does not fit");
      new DataView(out.buffer, out.byteOffset, 4).setUint32(0, n, true);
      setCounter(iv, records++);
      if (lib.EVP_EncryptInit_ex(ctx, null, null, null, iv) !== 1) fail("EncryptInit");
      if (lib.EVP_EncryptUpdate(ctx, null, outl, out.subarray(0, 4), 4) !== 1) fail("AAD");
      return n;
    };
    const update = (p: Uint8Array, out: Uint8Array): number => {
      if (p.length === 0) return 0;
      if (lib.EVP_EncryptUpdate(ctx, out, outl, p, p.length) !== 1) fail("EncryptUpdate");
      return outl[0];
    };
    const finish = (out: Uint8Array, at: number): number => {
      let o = at;
      if (lib.EVP_EncryptFinal_ex(ctx, out.subarray(o), outl) !== 1) fail("EncryptFinal");
      o += outl[0];
      const tag = out.subarray(o, o + TAG_BYTES);
      if (lib.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_BYTES, tag) !== 1) fail("tag");
      return o + TAG_BYTES;
    };
    return {
      get records() {
        return records;
      },
      seal(parts, out) {
        begin(parts, out);
        let o = 4;
        for (const p of parts) o += update(p, out.subarray(o));
        return finish(out, o);
      },
      async sealAsync(parts, out) {
        const n = begin(parts, out);
        let o = 4;
        for (const p of parts) {
          if (p.length < ASYNC_MIN_BYTES) o += update(p, out.subarray(o));
          else {
            if (await lib.EncryptUpdateBulk(ctx, out.subarray(o), outl, p, p.length) !== 1) {
              fail("EncryptUpdate");
            }
            o += outl[0];
          }
        }
        if (o !== 4 + n) fail("EncryptUpdate length");
        return finish(out, o);
      },
      close: () => lib.EVP_CIPHER_CTX_free(ctx),
    };
  }

  opener(key: Uint8Array, label: number): Opener {
    const { lib } = this;
    const ctx = this.#context(key, label, false);
    const iv = nonceBuffer(label);
    const outl = new Int32Array(1);
    const scratch = new Uint8Array(TAG_BYTES);
    let records = 0;
    const begin = (head: Uint8Array, tag: Uint8Array): boolean => {
      if (head.length !== 4 || tag.length !== TAG_BYTES) return false;
      setCounter(iv, records++);
      if (lib.EVP_DecryptInit_ex(ctx, null, null, null, iv) !== 1) return false;
      return lib.EVP_DecryptUpdate(ctx, null, outl, head, 4) === 1;
    };
    const finish = (tag: Uint8Array): boolean => {
      scratch.set(tag);
      if (lib.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_BYTES, scratch) !== 1) {
        return false;
      }
      return lib.EVP_DecryptFinal_ex(ctx, scratch, outl) === 1;
    };
    return {
      open(head, body, tag) {
        if (!begin(head, tag)) return false;
        if (body.length && lib.EVP_DecryptUpdate(ctx, body, outl, body, body.length) !== 1) {
          return false;
        }
        return finish(tag);
      },
      async openAsync(head, body, tag) {
        if (!begin(head, tag)) return false;
        if (body.length >= ASYNC_MIN_BYTES) {
          if (await lib.DecryptUpdateBulk(ctx, body, outl, body, body.length) !== 1) return false;
        } else if (
          body.length && lib.EVP_DecryptUpdate(ctx, body, outl, body, body.length) !== 1
        ) {
          return false;
        }
        return finish(tag);
      },
      close: () => lib.EVP_CIPHER_CTX_free(ctx),
    };
  }

  #context(key: Uint8Array, label: number, encrypt: boolean): Deno.PointerValue {
    if (key.length !== KEY_BYTES) throw new RangeError(`AES-256-GCM keys are ${KEY_BYTES} bytes`);
    const ctx = this.lib.EVP_CIPHER_CTX_new();
    if (ctx === null) fail("CIPHER_CTX_new");
    const init = encrypt ? this.lib.EVP_EncryptInit_ex : this.lib.EVP_DecryptInit_ex;
    if (init(ctx, this.#cipher, null, key, nonceBuffer(label)) !== 1) {
      this.lib.EVP_CIPHER_CTX_free(ctx);
      fail("CipherInit");
    }
    return ctx;
  }
}

function nonceBuffer(label: number): Uint8Array {
  const iv = new Uint8Array(12);
  new DataView(iv.buffer).setUint32(0, label >>> 0, true);
  return iv;
}

function setCounter(iv: Uint8Array, n: number): void {
  const view = new DataView(iv.buffer);
  view.setUint32(4, n % 0x1_0000_0000, true);
  view.setUint32(8, Math.floor(n / 0x1_0000_0000), true);
}

function fail(what: string): never {
  throw new Error(`OpenSSL AES-256-GCM: ${what} failed`);
}

/** Seal and open one record, and refuse a flipped bit, before trusting the library. */
function selfTest(aead: Aead): boolean {
  const key = crypto.getRandomValues(new Uint8Array(KEY_BYTES));
  const plain = new Uint8Array(100).map((_, i) => i);
  const out = new Uint8Array(4 + plain.length + TAG_BYTES);
  const s = aead.sealer(key, 7);
  const n = s.seal([plain.subarray(0, 30), plain.subarray(30)], out);
  s.close();
  const copy = out.slice();
  const o = aead.opener(key, 7);
  const good = n === out.length &&
    o.open(out.subarray(0, 4), out.subarray(4, 104), out.subarray(104)) &&
    out.subarray(4, 104).every((b, i) => b === plain[i]);
  o.close();
  copy[50] ^= 1;
  const o2 = aead.opener(key, 7);
  const refused = !o2.open(copy.subarray(0, 4), copy.subarray(4, 104), copy.subarray(104));
  o2.close();
  return good && refused;
}
