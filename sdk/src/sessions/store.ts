/** A JSON value, as a {@link Store} keeps it. Amounts are decimal strings (JSON has no bigint). */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * Where sessions keep their state: the consumer's cumulative total and per-agreement paid totals, the
 * provider's preimages, latest hub promise and credited totals. Any key-value store with durable,
 * atomic single-key writes will do: a file per key (`FileStore` in `@chit/sdk/node`), IndexedDB,
 * localStorage, a database row. Losing a provider's store loses no earnings (see
 * {@link ProviderLedger.recover}); losing a consumer's store can make it sign a total lower than one it
 * signed before, which the hub credits only up to the highest total, so keep it durable.
 *
 * @example
 * const store: Store = new MemoryStore();
 * await store.put('greeting', { hello: 'world' });
 * await store.get('greeting'); // { hello: 'world' }
 */
export interface Store {
  /** The value last put under `key`, or `undefined`. */
  get(key: string): Promise<Json | undefined>;
  /** Replaces the value under `key`, atomically: a reader sees the old value or the new one, never a mix. */
  put(key: string, value: Json): Promise<void>;
  /** Removes `key`; nothing happens when it is absent. */
  delete(key: string): Promise<void>;
}

/**
 * A {@link Store} in memory, for tests and short-lived processes. Values are copied through JSON on the
 * way in and out, so a value that is not JSON (a bigint) fails here as it would in a real store.
 *
 * @example
 * const store = new MemoryStore();
 * const ledger = new ConsumerLedger({ hub, chainId, account, store });
 */
export class MemoryStore implements Store {
  readonly #values = new Map<string, string>();

  /**
   * The value stored under `key`, or `undefined`.
   *
   * @example
   * await store.get('key');
   */
  async get(key: string): Promise<Json | undefined> {
    const text = this.#values.get(key);
    return text === undefined ? undefined : (JSON.parse(text) as Json);
  }

  /**
   * Stores a copy of `value` under `key`.
   *
   * @example
   * await store.put('key', { n: 1 });
   */
  async put(key: string, value: Json): Promise<void> {
    this.#values.set(key, JSON.stringify(value));
  }

  /**
   * Removes `key`.
   *
   * @example
   * await store.delete('key');
   */
  async delete(key: string): Promise<void> {
    this.#values.delete(key);
  }

  /**
   * Every key, for inspection in tests.
   *
   * @example
   * store.keys(); // ['chit/consumer/31337/…']
   */
  keys(): string[] {
    return [...this.#values.keys()];
  }
}
