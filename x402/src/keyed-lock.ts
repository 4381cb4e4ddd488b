/**
 * One holder at a time per key, in the order they asked: `acquire(key)` resolves to the release of the
 * key once every earlier holder released it. Releasing twice does nothing.
 *
 * @example
 * const release = await locks.acquire(agreement);
 * try { await payAndRead(); } finally { release(); }
 */
export class KeyedLock {
  readonly #tails = new Map<string, Promise<void>>();

  async acquire(key: string): Promise<() => void> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    let open!: () => void;
    const mine = new Promise<void>((resolve) => {
      open = resolve;
    });
    const tail = previous.then(() => mine);
    this.#tails.set(key, tail);
    await previous;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      open();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    };
  }
}
