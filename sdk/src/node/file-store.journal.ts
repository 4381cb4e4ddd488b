import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';

/**
 * The state of one {@link FileStore} directory in this process, shared by every FileStore opened on it
 * here: the values written to its journals and not yet folded into their own files (`overlay`), and the
 * journal this process appends to.
 *
 * On disk a directory holds a file per key (`<escaped key>.json`, the value as JSON) and journals
 * (`journal.<seq>.<random>.log`, the random part telling apart journals of one seq in a directory
 * removed and made again). A journal line is `<checksum> <record>\n`: the record is JSON, `{"k":key,"v":value}`
 * or `{"k":key,"d":true}` for a deletion; the checksum is the first 16 hex digits of its SHA-256. A key's
 * value is its last record in the journals, read in order of seq, or else its file.
 *
 * Writes made together are appended to the journal as one write and made durable by one fdatasync (group
 * commit): a put resolves once its line is on disk. Once a journal holds `journalBytes`, the process
 * starts another and folds the older ones into the key files (each written to a temporary file, synced
 * and renamed, then the directory synced), then deletes them. A crash at any point leaves every
 * acknowledged write readable: a journal is deleted only after its values are in their files, and a
 * line torn by a crash fails its checksum, so it and what follows it in that journal are ignored (it was
 * never acknowledged: the next writer starts a journal of its own).
 */
export class DirectoryJournal {
  readonly directory: string;
  /** Values from the journals, by key: JSON text, null for a deletion, and the name of the journal holding it. */
  readonly overlay = new Map<string, { text: string | null; journal: string }>();
  /** Journals read, by name: how many bytes of valid lines. */
  readonly #consumed = new Map<string, number>();
  #writer: Writer | undefined;
  /** Journals this process folds or folded: never read again, though a refresh may list them until deleted. */
  readonly #retired = new Set<string>();
  #pending: Pending[] = [];
  #flushing: Promise<void> | undefined;
  /** The durability of each key's last write still under way, for reads of that key to wait for. */
  readonly #unflushed = new Map<string, Promise<void>>();
  #refreshing: Promise<void> = Promise.resolve();
  #folding: Promise<void> | undefined;
  #journalBytes: number;
  #wrote = false;

  constructor(directory: string, journalBytes: number) {
    this.directory = directory;
    this.#journalBytes = journalBytes;
  }

  /** The journal size past which a new one is started and the older ones folded (the smallest any FileStore on it asked for). */
  limit(journalBytes: number): void {
    this.#journalBytes = Math.min(this.#journalBytes, journalBytes);
  }

  /**
   * Reads what other processes (or this one before) appended to the journals since it last looked, and
   * forgets journals deleted since (their values are in the key files). Every FileStore refreshes once, on
   * its first use, so that it sees what was durable when it was first used.
   */
  refresh(): Promise<void> {
    // One refresh at a time; one that failed (its reads throw) does not stop the next.
    const refreshing = this.#refreshing.catch(() => undefined).then(() => this.#refresh());
    this.#refreshing = refreshing;
    return refreshing;
  }

  async #refresh(): Promise<void> {
    const listed = await this.#journalNames();
    const present = new Set(listed);
    for (const name of this.#retired) if (!present.has(name) && !this.#consumed.has(name)) this.#retired.delete(name);
    for (const name of this.#consumed.keys()) {
      if (present.has(name)) continue;
      // Folded and deleted by another process, or the directory was removed: the files hold the values.
      this.#consumed.delete(name);
      for (const [key, entry] of this.overlay) if (entry.journal === name) this.overlay.delete(key);
      if (this.#writer?.name === name) {
        const { handle } = this.#writer;
        this.#writer = undefined;
        await handle.close().catch(() => undefined);
      }
    }
    for (const name of listed) {
      if (name === this.#writer?.name || this.#retired.has(name)) continue;
      const from = this.#consumed.get(name) ?? 0;
      let bytes: Buffer;
      try {
        bytes = await readFile(path.join(this.directory, name));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw error;
      }
      if (this.#retired.has(name)) continue; // a fold began while it was read
      this.#consumed.set(name, from + this.#apply(name, bytes.subarray(from)));
    }
  }

  /** Applies the valid lines at the start of `bytes` to the overlay; returns how many bytes they take. */
  #apply(journal: string, bytes: Buffer): number {
    let at = 0;
    while (at < bytes.length) {
      const end = bytes.indexOf(0x0a, at);
      if (end < 0) break;
      const record = parseLine(bytes.toString('utf8', at, end));
      if (!record) break; // torn by a crash: never acknowledged, nor anything after it in this journal
      this.overlay.set(record.key, { text: record.text, journal });
      at = end + 1;
    }
    return at;
  }

  /** Waits until the last write to `key` made so far is durable (or failed). */
  async settled(key: string): Promise<void> {
    const unflushed = this.#unflushed.get(key);
    if (unflushed) await unflushed.catch(() => undefined);
  }

  /** Appends `key`'s new value (JSON text, or null to delete it); resolves once it is on disk. */
  write(key: string, text: string | null): Promise<void> {
    const record = text === null ? `{"k":${JSON.stringify(key)},"d":true}` : `{"k":${JSON.stringify(key)},"v":${text}}`;
    const line = `${checksum(record)} ${record}\n`;
    const done = new Promise<void>((resolve, reject) => this.#pending.push({ key, text, line, resolve, reject }));
    this.#unflushed.set(key, done);
    void done.then(
      () => this.#forget(key, done),
      () => this.#forget(key, done),
    );
    if (!this.#flushing) this.#flushing = this.#flush();
    return done;
  }

  #forget(key: string, done: Promise<void>): void {
    if (this.#unflushed.get(key) === done) this.#unflushed.delete(key);
  }

  /** Writes what is pending, one group at a time, until nothing is. */
  async #flush(): Promise<void> {
    // Let the writes made in this turn of the event loop join the first group.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.#pending.length > 0) await this.#writeGroup(this.#pending.splice(0));
    // Cleared in the same turn as the last look at what is pending: a write made after it starts
    // another flush.
    this.#flushing = undefined;
  }

  /** Appends a group of writes as one write and syncs it; settles each write's promise (never throws). */
  async #writeGroup(group: Pending[]): Promise<void> {
    try {
      await this.#refreshing.catch(() => undefined); // appending is safe whatever a refresh read
      const writer = await this.#openWriter();
      const buffer = Buffer.from(group.map((entry) => entry.line).join(''), 'utf8');
      let written = 0;
      while (written < buffer.length) {
        const { bytesWritten } = await writer.handle.write(buffer, written, buffer.length - written);
        written += bytesWritten;
      }
      await writer.handle.datasync();
      writer.size += buffer.length;
      this.#consumed.set(writer.name, writer.size);
      for (const entry of group) this.overlay.set(entry.key, { text: entry.text, journal: writer.name });
      for (const entry of group) entry.resolve();
      if (writer.size >= this.#journalBytes) this.#rotate();
    } catch (error) {
      // What was written of this group is unknown: later groups go to a new journal, so that a torn
      // line here cannot hide them.
      const writer = this.#writer;
      this.#writer = undefined;
      await writer?.handle.close().catch(() => undefined);
      for (const entry of group) entry.reject(error as Error);
    }
  }

  async #openWriter(): Promise<Writer> {
    if (this.#writer) return this.#writer;
    await mkdir(this.directory, { recursive: true, mode: 0o700 });
    if (!this.#wrote) {
      // Temporary files of a fold that a crash cut short (their key's value is still in its journal),
      // removed when this process first writes, before it folds anything itself.
      this.#wrote = true;
      const names = await readdir(this.directory);
      await Promise.all(
        names
          .filter((name) => name.endsWith('.tmp'))
          .map((name) => rm(path.join(this.directory, name), { force: true })),
      );
    }
    const older = [...new Set([...this.#consumed.keys(), ...(await this.#journalNames())])];
    const seq = Math.max(0, ...older.map(seqOf)) + 1;
    const name = `journal.${seq}.${randomBytes(4).toString('hex')}.log`;
    const handle = await open(path.join(this.directory, name), 'wx', 0o600);
    this.#writer = { name, handle, size: 0 };
    this.#consumed.set(name, 0);
    await syncDirectory(this.directory);
    // Journals of earlier runs are folded in the background.
    if (older.length > 0) void this.#startFold();
    return this.#writer;
  }

  /** Starts a new journal for the next writes, and folds the older ones. */
  #rotate(): void {
    const writer = this.#writer;
    this.#writer = undefined;
    void writer?.handle.close().catch(() => undefined);
    void this.#startFold();
  }

  /** Folds in the background; a fold that fails leaves the journals, and the next rotation tries again. */
  #startFold(): Promise<void> {
    if (!this.#folding) {
      this.#folding = this.#fold().finally(() => {
        this.#folding = undefined;
      });
      this.#folding.catch(() => undefined);
    }
    return this.#folding;
  }

  /** Writes the values of every journal but the one being written into their files, then deletes those journals. */
  async #fold(): Promise<void> {
    const sealed = new Set([...this.#consumed.keys()].filter((name) => name !== this.#writer?.name));
    if (sealed.size === 0) return;
    for (const name of sealed) this.#retired.add(name);
    const entries = [...this.overlay].filter(([, entry]) => sealed.has(entry.journal));
    // Two files at a time: the syncs run on libuv's thread pool (4 threads), which the journal's own
    // appends and syncs share, so a fold leaves them threads.
    for (let i = 0; i < entries.length; i += FOLD_PARALLELISM) {
      await Promise.all(
        entries.slice(i, i + FOLD_PARALLELISM).map(([key, { text }]) => {
          const file = path.join(this.directory, fileNameOf(key));
          return text === null ? rm(file, { force: true }) : writeAtomically(file, text);
        }),
      );
    }
    await syncDirectory(this.directory);
    for (const name of sealed) {
      await rm(path.join(this.directory, name), { force: true });
      this.#consumed.delete(name);
    }
    await syncDirectory(this.directory);
    for (const [key] of entries) {
      const entry = this.overlay.get(key);
      if (entry && sealed.has(entry.journal)) this.overlay.delete(key);
    }
  }

  /** Folds every journal written so far into the key files, once the writes under way are on disk. */
  async compact(): Promise<void> {
    await this.#flushing;
    await this.#folding?.catch(() => undefined);
    if (this.#writer && this.#writer.size > 0) this.#rotate();
    await this.#startFold();
  }

  /** The journals in the directory, in the order they were written. */
  async #journalNames(): Promise<string[]> {
    try {
      const names = (await readdir(this.directory)).filter((name) => JOURNAL.test(name));
      return names.sort((a, b) => seqOf(a) - seqOf(b) || (a < b ? -1 : 1));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
  }
}

const JOURNAL = /^journal\.(\d+)\.[0-9a-f]+\.log$/;

function seqOf(name: string): number {
  return Number(JOURNAL.exec(name)?.[1] ?? 0);
}

/** Key files a fold writes at once. */
const FOLD_PARALLELISM = 2;

interface Writer {
  name: string;
  handle: Awaited<ReturnType<typeof open>>;
  size: number;
}

interface Pending {
  key: string;
  text: string | null;
  line: string;
  resolve: () => void;
  reject: (error: Error) => void;
}

function checksum(record: string): string {
  return createHash('sha256').update(record).digest('hex').slice(0, 16);
}

/** A journal line's record, or undefined when it is not one whole (a line torn by a crash). */
function parseLine(line: string): { key: string; text: string | null } | undefined {
  const space = line.indexOf(' ');
  if (space !== 16) return undefined;
  const record = line.slice(17);
  if (checksum(record) !== line.slice(0, 16)) return undefined;
  try {
    const parsed = JSON.parse(record) as { k?: unknown; v?: unknown; d?: unknown };
    if (typeof parsed.k !== 'string') return undefined;
    if (parsed.d === true) return { key: parsed.k, text: null };
    if (!('v' in parsed)) return undefined;
    return { key: parsed.k, text: JSON.stringify(parsed.v) };
  } catch {
    return undefined;
  }
}

/**
 * The longest key file name: file systems take 255 bytes, and a fold writes the file through a
 * temporary one named `<name>.<pid>.<12 hex>.tmp` first.
 */
const MAX_FILE_NAME = 255 - '.4194304.000000000000.tmp'.length;

/**
 * A key's file name: one flat directory; `/`, `.` and every other special character are escaped. A key
 * whose name would be too long for a file system is refused, before anything is written (the journal
 * would take it, and its fold could never write it).
 */
export function fileNameOf(key: string): string {
  if (key.length === 0) throw new RangeError('A store key cannot be empty');
  const name = `${encodeURIComponent(key).replace(/[.!'()*~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}.json`;
  if (name.length > MAX_FILE_NAME) {
    throw new RangeError(
      `A store key is too long for a file name: ${name.length} bytes escaped, at most ${MAX_FILE_NAME} (${key.slice(0, 60)}…)`,
    );
  }
  return name;
}

/** Writes `file` through a temporary file in its directory: written, synced, renamed over it. */
async function writeAtomically(file: string, text: string): Promise<void> {
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
}

/** Syncs a directory, so that names created, renamed or removed in it survive a power loss. */
export async function syncDirectory(directory: string): Promise<void> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(directory, 'r');
    await handle.sync();
  } catch {
    // Some platforms (Windows) cannot open or sync a directory; the rename is still atomic there.
  } finally {
    await handle?.close();
  }
}
