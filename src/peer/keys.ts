/**
 * Text forms of keys and fingerprints, Ed25519 signing and verification (WebCrypto).
 *
 * A public key is the base64url text (no padding) of its 32 raw bytes; a certificate fingerprint is
 * the lowercase hex SHA-256 of the certificate's DER bytes.
 *
 * @module
 */
import { decodeBase64 } from "../util/base64.ts";

/** Length of an Ed25519 public key's text form. */
export const PUBKEY_TEXT_LENGTH = 43;

const PUBKEY_RE = /^[A-Za-z0-9_-]{43}$/;

/** Encode bytes as base64url without padding. */
export function base64url(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** Decode base64url (padding optional); throws on malformed text. */
export function fromBase64url(text: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*={0,2}$/.test(text)) throw new Error("not base64url text");
  const std = text.replaceAll("-", "+").replaceAll("_", "/").replace(/=+$/, "");
  return decodeBase64(std + "=".repeat((4 - std.length % 4) % 4));
}

/** Whether `text` has the shape of an Ed25519 public key's text form. */
export function isPublicKeyText(text: string): boolean {
  return PUBKEY_RE.test(text) && fromBase64url(text).length === 32;
}

/**
 * Normalize a SHA-256 fingerprint written as hex, with or without colons, any case; undefined when
 * `text` is not one.
 */
export function normalizeFingerprint(text: string): string | undefined {
  const hex = text.trim().replaceAll(":", "").toLowerCase();
  return /^[0-9a-f]{64}$/.test(hex) ? hex : undefined;
}

/** The DER bytes of the first certificate in a PEM text. */
export function pemToDer(pem: string): Uint8Array {
  const m = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/.exec(pem);
  if (!m) throw new Error("no PEM certificate found");
  return decodeBase64(m[1].replace(/\s+/g, ""));
}

/** Lowercase hex SHA-256 of `bytes`. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as BufferSource));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The SHA-256 fingerprint of a PEM certificate. */
export async function certFingerprint(pem: string): Promise<string> {
  return await sha256Hex(pemToDer(pem));
}

/** Import a public key from its text form for verification. */
export async function importPublicKey(text: string): Promise<CryptoKey> {
  if (!isPublicKeyText(text)) throw new Error("malformed Ed25519 public key");
  return await crypto.subtle.importKey(
    "raw",
    fromBase64url(text) as BufferSource,
    { name: "Ed25519" },
    true,
    ["verify"],
  );
}

/** Sign `data` with an Ed25519 private key; 64 bytes. */
export async function sign(key: CryptoKey, data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.sign("Ed25519", key, data as BufferSource));
}

/** Verify an Ed25519 signature; false (never a throw) on any malformed input. */
export async function verify(
  publicKeyText: string,
  signature: Uint8Array,
  data: Uint8Array,
): Promise<boolean> {
  if (signature.length !== 64) return false;
  try {
    const key = await importPublicKey(publicKeyText);
    return await crypto.subtle.verify(
      "Ed25519",
      key,
      signature as BufferSource,
      data as BufferSource,
    );
  } catch {
    return false;
  }
}
