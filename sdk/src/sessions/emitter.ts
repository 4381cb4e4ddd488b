/**
 * A minimal typed event emitter that runs in browsers and Node alike. A listener that throws does not
 * stop the others nor the emitter's caller; its error is re-thrown in a microtask, as `EventTarget`
 * reports it.
 *
 * @example
 * const events = new Emitter<{ paid: [amount: bigint] }>();
 * const off = events.on('paid', (amount) => console.log(amount));
 * events.emit('paid', 5n);
 * off();
 */
export class Emitter<Events extends { [K in keyof Events]: unknown[] }> {
  // biome-ignore lint/suspicious/noExplicitAny: listeners of different events share one map.
  readonly #listeners = new Map<keyof Events, Set<(...args: any[]) => void>>();

  /**
   * Calls `listener` on every `event`; returns a function that removes it.
   *
   * @example
   * const off = events.on('paid', (amount) => console.log(amount));
   */
  on<K extends keyof Events>(event: K, listener: (...args: Events[K]) => void): () => void {
    let set = this.#listeners.get(event);
    if (!set) {
      set = new Set();
      this.#listeners.set(event, set);
    }
    set.add(listener);
    return () => set.delete(listener);
  }

  /**
   * Calls every listener of `event` with `args`.
   *
   * @example
   * events.emit('paid', 5n);
   */
  emit<K extends keyof Events>(event: K, ...args: Events[K]): void {
    for (const listener of this.#listeners.get(event) ?? []) {
      try {
        listener(...args);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}
