import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Json, Store } from '../sessions/store.js';

/**
 * A {@link Store} that keeps each key in its own JSON file under `directory`. A write goes to a
 * temporary file in the same directory, is flushed to disk (fsync), and is renamed over the old file,
 * so a crash leaves the old value or the new one, never a torn file; the directory is synced after the
 * rename so the new name survives a power loss. Writes to one key are applied in the order they were
 * made.
 *
 * @example
 * import { FileStore } from '@chit/sdk/node';
 * const store = new FileStore('/var/lib/chit');
 * const ledger = new ConsumerLedger({ hub, chainId, account, store });
 */
export class FileStore implements Store {
  readonly directory: string;
  readonly #queues = new Map<string, Promise<unknown>>();
  #ready: Promise<void> | undefined;

  constructor(directory: string) {
    this.directory = path.resolve(directory);
  }

  /**
   * The value in `key`'s file, or `undefined` when there is none; sees every write made before it.
   *
   * @example
   * await store.get('chit/consumer/1');
   */
  async get(key: string): Promise<Json | undefined> {
    await this.#queue(key, async () => undefined); // reads see the writes made before them
    try {
      return JSON.parse(await readFile(this.#file(key), 'utf8')) as Json;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  /**
   * Writes `value` to `key`'s file atomically (temporary file, fsync, rename, directory fsync).
   *
   * @example
   * await store.put('chit/consumer/1', { total: '5' });
   */
  async put(key: string, value: Json): Promise<void> {
    const text = JSON.stringify(value); // fails before touching the disk on a value that is not JSON
    return this.#queue(key, async () => {
      await this.#mkdir();
      const file = this.#file(key);
      const temporary = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
      const handle = await open(temporary, 'w', 0o600);
      try {
        await handle.writeFile(text, 'utf8');
        await handle.sync();
      } catch (error) {
        await handle.close();
        await rm(temporary, { force: true });
        throw error;
      }
      await handle.close();
      try {
        await rename(temporary, file);
      } catch (error) {
        await rm(temporary, { force: true });
        throw error;
      }
      await this.#syncDirectory();
    });
  }

  /**
   * Removes `key`'s file; nothing happens when it is absent.
   *
   * @example
   * await store.delete('chit/consumer/1');
   */
  async delete(key: string): Promise<void> {
    return this.#queue(key, async () => {
      await rm(this.#file(key), { force: true });
      await this.#syncDirectory();
    });
  }

  /**
   * Every key stored, for inspection and backups.
   *
   * @example
   * const keys = await store.keys();
   */
  async keys(): Promise<string[]> {
    try {
      const names = await readdir(this.directory);
      return names.filter((name) => name.endsWith('.json')).map((name) => decodeURIComponent(name.slice(0, -5)));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
  }

  #file(key: string): string {
    if (key.length === 0) throw new RangeError('A store key cannot be empty');
    // One flat directory; `/`, `.` and every other special character are escaped.
    const name = encodeURIComponent(key).replace(/[.!'()*~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
    return path.join(this.directory, `${name}.json`);
  }

  #mkdir(): Promise<void> {
    this.#ready ??= mkdir(this.directory, { recursive: true, mode: 0o700 }).then(() => undefined);
    return this.#ready;
  }

  async #syncDirectory(): Promise<void> {
    let handle: Awaited<ReturnType<typeof open>> | undefined;
    try {
      handle = await open(this.directory, 'r');
      await handle.sync();
    } catch {
      // Some platforms (Windows) cannot open or sync a directory; the rename is still atomic there.
    } finally {
      await handle?.close();
    }
  }

  #queue<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#queues.get(key) ?? Promise.resolve();
    const result = previous.then(task);
    const tail = result.catch(() => undefined);
    this.#queues.set(key, tail);
    void tail.then(() => {
      if (this.#queues.get(key) === tail) this.#queues.delete(key);
    });
    return result;
  }
}
