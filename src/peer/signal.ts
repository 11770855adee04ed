/**
 * A level-triggered wake-up for code that waits on shared state (window space, acks).
 *
 * @module
 */

/** Wakes every waiter on {@linkcode Signal.notify}. */
export class Signal {
  #waiters: (() => void)[] = [];

  /** Wait for the next notify, or at most `timeoutMs`. */
  wait(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        const i = this.#waiters.indexOf(done);
        if (i >= 0) this.#waiters.splice(i, 1);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.#waiters.push(done);
    });
  }

  /** Wake every waiter. */
  notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }
}
