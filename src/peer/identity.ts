/**
 * A node's identity in its state directory: an Ed25519 key pair (who the node is) and a self-signed
 * TLS certificate (what peers pin). Every file is created with mode 0600, the directory with 0700.
 *
 * @example
 * ```ts
 * const id = await initIdentity("/var/lib/u2cm");
 * console.log(id.publicKey, id.certFingerprint);
 * ```
 *
 * @module
 */
import { PeerError } from "./errors.ts";
import { base64url, certFingerprint } from "./keys.ts";
import { isFile } from "../util/fs.ts";

/** File names inside the state directory. */
export const IDENTITY_FILES = {
  privateKey: "identity.key",
  publicKey: "identity.pub",
  cert: "tls.crt",
  certKey: "tls.key",
} as const;

/** A node's loaded identity. */
export interface Identity {
  /** The Ed25519 public key, base64url text. */
  publicKey: string;
  /** The Ed25519 private key, for signing challenges. */
  privateKey: CryptoKey;
  /** The TLS certificate (PEM). */
  certPem: string;
  /** The TLS private key (PEM). */
  keyPem: string;
  /** SHA-256 fingerprint of the certificate, lowercase hex. */
  certFingerprint: string;
}

/** Options of {@linkcode initIdentity}. */
export interface InitIdentityOptions {
  /** Replace an existing identity. @default false */
  force?: boolean;
  /** The openssl executable used to make the certificate. @default "openssl" */
  openssl?: string;
}

/** Whether `stateDir` already holds an identity. */
export function hasIdentity(stateDir: string): boolean {
  return Object.values(IDENTITY_FILES).every((f) => isFile(`${stateDir}/${f}`));
}

/**
 * Create the node's identity in `stateDir` (created when missing). An existing identity is kept
 * and returned unless `force` is set.
 */
export async function initIdentity(
  stateDir: string,
  options: InitIdentityOptions = {},
): Promise<Identity & { created: boolean }> {
  const { force = false, openssl = "openssl" } = options;
  Deno.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  if (hasIdentity(stateDir) && !force) {
    return { ...(await loadIdentity(stateDir)), created: false };
  }
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  const publicKey = base64url(raw);
  const { certPem, keyPem } = makeCertificate(publicKey, openssl);
  writePrivate(`${stateDir}/${IDENTITY_FILES.privateKey}`, pem("PRIVATE KEY", pkcs8));
  writePrivate(`${stateDir}/${IDENTITY_FILES.publicKey}`, publicKey + "\n");
  writePrivate(`${stateDir}/${IDENTITY_FILES.cert}`, certPem);
  writePrivate(`${stateDir}/${IDENTITY_FILES.certKey}`, keyPem);
  return { ...(await loadIdentity(stateDir)), created: true };
}

/** Load the identity from `stateDir`; throws {@linkcode PeerError} "identity" when absent. */
export async function loadIdentity(stateDir: string): Promise<Identity> {
  if (!hasIdentity(stateDir)) {
    throw new PeerError(
      "identity",
      `no node identity in ${stateDir}: run 'u2cm init --state-dir ${stateDir}' first`,
    );
  }
  try {
    const read = (f: string) => Deno.readTextFileSync(`${stateDir}/${f}`);
    const der = pemBody(read(IDENTITY_FILES.privateKey), "PRIVATE KEY");
    const privateKey = await crypto.subtle.importKey(
      "pkcs8",
      der as BufferSource,
      { name: "Ed25519" },
      false,
      ["sign"],
    );
    const certPem = read(IDENTITY_FILES.cert);
    return {
      publicKey: read(IDENTITY_FILES.publicKey).trim(),
      privateKey,
      certPem,
      keyPem: read(IDENTITY_FILES.certKey),
      certFingerprint: await certFingerprint(certPem),
    };
  } catch (e) {
    throw new PeerError(
      "identity",
      `the identity in ${stateDir} is unreadable (${(e as Error).message}); ` +
        `recreate it with 'u2cm init --state-dir ${stateDir} --force' and re-pin it on peers`,
    );
  }
}

function makeCertificate(publicKey: string, openssl: string): { certPem: string; keyPem: string } {
  const dir = Deno.makeTempDirSync({ prefix: "u2cm-cert-" });
  try {
    // A leaf (CA:FALSE): Deno's QUIC rejects self-signed certificates marked as a CA.
    const args = [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-days",
      "3650",
      "-subj",
      `/CN=u2cm-${publicKey.slice(0, 16)}`,
      "-addext",
      "basicConstraints=critical,CA:FALSE",
      "-addext",
      "subjectAltName=DNS:u2cm-agent",
      "-addext",
      "keyUsage=critical,digitalSignature",
      "-addext",
      "extendedKeyUsage=serverAuth,clientAuth",
      "-keyout",
      `${dir}/key.pem`,
      "-out",
      `${dir}/cert.pem`,
    ];
    let out;
    try {
      out = new Deno.Command(openssl, { args, stdout: "null", stderr: "piped" }).outputSync();
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new PeerError(
          "identity",
          "making the TLS certificate needs openssl: install it (apt-get install openssl)",
        );
      }
      throw e;
    }
    if (!out.success) {
      throw new PeerError(
        "identity",
        `openssl could not make the TLS certificate: ${new TextDecoder().decode(out.stderr)}`,
      );
    }
    return {
      certPem: Deno.readTextFileSync(`${dir}/cert.pem`),
      keyPem: Deno.readTextFileSync(`${dir}/key.pem`),
    };
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

/** Write `text` to `path` atomically with mode 0600. */
export function writePrivate(path: string, text: string): void {
  const tmp = `${path}.${Deno.pid}.tmp`;
  Deno.writeTextFileSync(tmp, text, { mode: 0o600 });
  Deno.chmodSync(tmp, 0o600);
  Deno.renameSync(tmp, path);
}

function pem(label: string, der: Uint8Array): string {
  const b64 = btoa(String.fromCharCode(...der));
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

function pemBody(text: string, label: string): Uint8Array {
  const m = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`).exec(text);
  if (!m) throw new Error(`no ${label} block`);
  const bin = atob(m[1].replace(/\s+/g, ""));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}
