/**
 * An in-process {@linkcode MigrationChannel}: the "destination" is a directory on this machine
 * (image files, and a state directory for its half of the commit) with an in-memory page store,
 * restored and resumed by the same {@linkcode Destination} peer agents run. For same-machine
 * migrations, tests of the driver, and development.
 *
 * @module
 */
import { Destination } from "./destination.ts";
import { isValidImageName } from "./files.ts";
import type { MigrationChannel, PageBatch, RestoreRequest, RestoreResult } from "./channel.ts";
import type { LazyCheckReport } from "./contract.ts";
import { lazyCheckReport } from "./lazy_check.ts";
import { LocalPageStore } from "./page_store.ts";
import { restoreMigration } from "./restore.ts";

/** The owner name local migrations are recorded under. */
const LOCAL_OWNER = "local";

/** Options of {@linkcode LocalChannel}. */
export interface LocalChannelOptions {
  /** The destination directory (created). */
  dir: string;
  /** The migration's id. */
  migrationId: string;
  /** Restore handler. @default restoreMigration */
  onRestore?: typeof restoreMigration;
}

/**
 * @example
 * ```ts
 * const channel = new LocalChannel({ dir: "/tmp/dest", migrationId: "m1" });
 * ```
 */

/** A migration channel to a directory on this machine. */
export class LocalChannel implements MigrationChannel {
  readonly #store: LocalPageStore;
  readonly #images: string;
  readonly #id: string;
  readonly #dest: Destination;
  #bytes = 0;
  #aborted?: string;

  /** @param options the directory and migration id */
  constructor(options: LocalChannelOptions) {
    this.#images = `${options.dir}/images`;
    Deno.mkdirSync(this.#images, { recursive: true });
    this.#store = new LocalPageStore({ imageDir: `${options.dir}/image` });
    this.#id = options.migrationId;
    this.#dest = new Destination({
      stateDir: `${options.dir}/state`,
      restore: options.onRestore ?? restoreMigration,
    });
  }

  /** The images directory. */
  get imagesDir(): string {
    return this.#images;
  }

  /** Bytes sent so far. */
  get bytesSent(): number {
    return this.#bytes;
  }

  sendPages(batch: PageBatch): Promise<void> {
    this.#check();
    this.#store.put(batch.pid, batch.addresses, batch.data, batch.hashes);
    this.#bytes += batch.data.length + batch.addresses.length * (8 + 16);
    return Promise.resolve();
  }

  async sendFile(name: string, data: Uint8Array): Promise<void> {
    this.#check();
    if (!isValidImageName(name)) throw new Error(`refusing image file name '${name}'`);
    await Deno.writeFile(`${this.#images}/${name}`, data);
    this.#bytes += data.length + name.length;
  }

  flush(): Promise<void> {
    this.#check();
    return Promise.resolve();
  }

  async restore(request: RestoreRequest): Promise<RestoreResult> {
    this.#check();
    return await this.#dest.restore({
      migrationId: this.#id,
      dir: this.#images,
      store: this.#store,
      request,
      owner: LOCAL_OWNER,
    });
  }

  resume(): Promise<void> {
    const answer = this.#dest.resolve(this.#id, LOCAL_OWNER, "resume");
    if (answer.state !== "resumed") {
      return Promise.reject(new Error(answer.error ?? `destination copy is ${answer.state}`));
    }
    return Promise.resolve();
  }

  /** The destination's check of the post-copy pages (same process: its registry). */
  postCopyReport(): Promise<LazyCheckReport | undefined> {
    return lazyCheckReport(this.#id, 5000);
  }

  abort(reason: string): Promise<boolean> {
    this.#aborted = reason;
    this.#store.clear();
    return Promise.resolve(
      this.#dest.resolve(this.#id, LOCAL_OWNER, "discard").state !== "resumed",
    );
  }

  /** The destination side (its records), for tests. */
  get destination(): Destination {
    return this.#dest;
  }

  /** Drop the stored pages. */
  close(): void {
    this.#store.clear();
  }

  #check(): void {
    if (this.#aborted !== undefined) throw new Error(`migration aborted: ${this.#aborted}`);
  }
}
