/**
 * Runs async tasks one at a time, in the order they were queued. A failed task does not block the
 * ones after it.
 *
 * @example
 * const mutex = new Mutex();
 * await Promise.all([mutex.run(() => increment()), mutex.run(() => increment())]); // one after the other
 */
export class Mutex {
  #tail: Promise<unknown> = Promise.resolve();

  /**
   * Runs `task` after every task queued before it has settled; resolves or rejects as `task` does.
   *
   * @example
   * const total = await mutex.run(async () => (state.total += 1n));
   */
  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(() => task());
    this.#tail = result.catch(() => undefined);
    return result;
  }
}
