import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Json, Store } from '../sessions/store.js';
import { DirectoryJournal, fileNameOf } from './file-store.journal.js';

/** Options of a {@link FileStore}. */
export interface FileStoreOptions {
  /**
   * The journal size, in bytes, past which the store starts another and folds the older ones into the
   * key files in the background. Default 4 MiB.
   */
  journalBytes?: number;
}

/** The journal of each directory in this process: every FileStore on one directory shares it. */
const journals = new Map<string, DirectoryJournal>();

/**
 * A durable {@link Store} in a directory. Writes go to an append-only journal in the directory and are
 * committed in groups: the writes made while the previous group was being synced are appended as one
 * write and synced by one fdatasync, and each put resolves once its write is on disk. So a busy seller,
 * whose every paid request writes its meter and whose every exchange writes its ledger, pays one disk
 * sync for many writes instead of several per write. The journal is folded into a file per key
 * (`<escaped key>.json`, written to a temporary file, synced and renamed) once it grows past
 * `journalBytes`, and when a process first writes after a restart; a crash anywhere leaves each key's
 * last acknowledged value (see `file-store.journal.ts` for the format).
 *
 * One process writes a directory at a time (as one ledger does); FileStores on one directory in one
 * process share what they wrote. Another process reading the directory sees what was durable when it
 * first read.
 *
 * @example
 * import { FileStore } from '@chit/sdk/node';
 * const store = new FileStore('/var/lib/chit');
 * const ledger = new ConsumerLedger({ hub, chainId, account, store });
 */
export class FileStore implements Store {
  readonly directory: string;
  readonly #journal: DirectoryJournal;
  #ready: Promise<void> | undefined;

  constructor(directory: string, options: FileStoreOptions = {}) {
    this.directory = path.resolve(directory);
    const journalBytes = options.journalBytes ?? 4 * 1024 * 1024;
    let journal = journals.get(this.directory);
    if (journal) journal.limit(journalBytes);
    else {
      journal = new DirectoryJournal(this.directory, journalBytes);
      journals.set(this.directory, journal);
    }
    this.#journal = journal;
  }

  /**
   * The value stored under `key`, or `undefined` when there is none; sees every write made before it.
   *
   * @example
   * await store.get('chit/consumer/1');
   */
  async get(key: string): Promise<Json | undefined> {
    const file = this.#file(key);
    await this.#open();
    await this.#journal.settled(key); // reads see the writes made before them
    const entry = this.#journal.overlay.get(key);
    if (entry) return entry.text === null ? undefined : (JSON.parse(entry.text) as Json);
    try {
      return JSON.parse(await readFile(file, 'utf8')) as Json;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  /**
   * Stores `value` under `key`; resolves once it is on disk.
   *
   * @example
   * await store.put('chit/consumer/1', { total: '5' });
   */
  async put(key: string, value: Json): Promise<void> {
    this.#file(key);
    const text = JSON.stringify(value); // fails before touching the disk on a value that is not JSON
    if (text === undefined) throw new TypeError(`A store value must be JSON, got ${typeof value}`);
    await this.#open();
    return this.#journal.write(key, text);
  }

  /**
   * Removes `key`; nothing happens when it is absent. Resolves once the removal is on disk.
   *
   * @example
   * await store.delete('chit/consumer/1');
   */
  async delete(key: string): Promise<void> {
    this.#file(key);
    await this.#open();
    return this.#journal.write(key, null);
  }

  /**
   * Every key stored, for inspection and backups.
   *
   * @example
   * const keys = await store.keys();
   */
  async keys(): Promise<string[]> {
    await this.#open();
    let names: string[] = [];
    try {
      names = await readdir(this.directory);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    const keys = new Set(
      names.filter((name) => name.endsWith('.json')).map((name) => decodeURIComponent(name.slice(0, -5))),
    );
    for (const [key, entry] of this.#journal.overlay) {
      if (entry.text === null) keys.delete(key);
      else keys.add(key);
    }
    return [...keys].sort();
  }

  /**
   * Folds the journals into the key files now and waits for it: the directory then holds a file per key
   * and the journal of the next writes only. For a tidy backup or exit; never needed for durability.
   *
   * @example
   * await store.compact();
   */
  async compact(): Promise<void> {
    await this.#open();
    await this.#journal.compact();
  }

  #file(key: string): string {
    return path.join(this.directory, fileNameOf(key));
  }

  /** Reads the journals once per FileStore, on its first use, so that it sees what was durable then. */
  #open(): Promise<void> {
    // A read that failed (a file the process could not open just then) is tried again on the next use.
    this.#ready ??= this.#journal.refresh().catch((error: unknown) => {
      this.#ready = undefined;
      throw error;
    });
    return this.#ready;
  }
}
