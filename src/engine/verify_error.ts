/**
 * The error of a failed verification against the source's page manifest (verify.ts).
 *
 * @module
 */

/**
 * A page that differs from the manifest, or a manifest that does not fit the images.
 *
 * @example
 * ```ts
 * throw new VerificationError("pid 1: page 0x1000 differs in the images");
 * ```
 */
export class VerificationError extends Error {
  /** @param message what differs */
  constructor(message: string) {
    super(`verification failed: ${message}`);
    this.name = "VerificationError";
  }
}
