/**
 * FileStore: a journal with group commit, folded into a file per key. What another process reads is
 * checked in another process (a child running tsx), and the crash by SIGKILL of a child in the middle of
 * its writes.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFile, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FileStore } from '../src/node/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const storeModule = path.join(here, '..', 'src', 'node', 'file-store.ts');

/** Runs `script` (an ES module body with `FileStore` and `dir` in scope) in a child Node process; its stdout. */
function child(dir: string, script: string, onLine?: (line: string, kill: () => void) => void): Promise<string> {
  const source = `import { FileStore } from ${JSON.stringify(storeModule)};\nconst dir = ${JSON.stringify(dir)};\n${script}`;
  return new Promise((resolve, reject) => {
    const process_ = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', source], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    let buffered = '';
    process_.stdout.on('data', (chunk: Buffer) => {
      out += chunk;
      buffered += chunk;
      let newline = buffered.indexOf('\n');
      while (newline >= 0) {
        onLine?.(buffered.slice(0, newline), () => process_.kill('SIGKILL'));
        buffered = buffered.slice(newline + 1);
        newline = buffered.indexOf('\n');
      }
    });
    process_.stderr.on('data', (chunk: Buffer) => {
      err += chunk;
    });
    process_.on('error', reject);
    process_.on('exit', (code, signal) => {
      if (code === 0 || signal === 'SIGKILL') resolve(out);
      else reject(new Error(`the child exited with ${code}: ${err}`));
    });
  });
}

/** What a fresh process reads under `keys`. */
async function readInChild(dir: string, keys: string[]): Promise<Record<string, unknown>> {
  const out = await child(
    dir,
    `const store = new FileStore(dir);
     const values = {};
     for (const key of ${JSON.stringify(keys)}) values[key] = (await store.get(key)) ?? null;
     process.stdout.write(JSON.stringify({ values, keys: await store.keys() }));`,
  );
  return JSON.parse(out) as Record<string, unknown>;
}

describe('FileStore', { timeout: 60_000 }, () => {
  let root: string;
  let n = 0;
  const fresh = () => path.join(root, `s${n++}`);
  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'chit-file-store-'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('writes to a journal, reads back, and folds into a file per key', async () => {
    const dir = fresh();
    const store = new FileStore(dir);
    assert.equal(await store.get('chit/consumer/x'), undefined);
    await store.put('chit/consumer/x', { total: '5', list: [1, null, true] });
    assert.deepEqual(await store.get('chit/consumer/x'), { total: '5', list: [1, null, true] });
    assert.match((await readdir(dir)).join(), /^journal\.1\.[0-9a-f]{8}\.log$/);
    assert.deepEqual(await store.keys(), ['chit/consumer/x']);
    await store.compact();
    assert.deepEqual(await readdir(dir), ['chit%2Fconsumer%2Fx.json']);
    assert.deepEqual(JSON.parse(await readFile(path.join(dir, 'chit%2Fconsumer%2Fx.json'), 'utf8')), {
      total: '5',
      list: [1, null, true],
    });
    assert.deepEqual(await store.get('chit/consumer/x'), { total: '5', list: [1, null, true] });
    await store.delete('chit/consumer/x');
    assert.equal(await store.get('chit/consumer/x'), undefined);
    assert.deepEqual(await store.keys(), []);
    await store.compact();
    assert.deepEqual(await readdir(dir), []);
  });

  it('applies concurrent writes in order, many keys in one group, and another process reads them', async () => {
    const dir = fresh();
    const store = new FileStore(dir);
    await Promise.all([
      ...Array.from({ length: 20 }, (_, i) => store.put('k', { i })),
      ...Array.from({ length: 50 }, (_, i) => store.put(`key/${i}`, { i })),
    ]);
    assert.deepEqual(await store.get('k'), { i: 19 });
    // Group commit: every write of that turn went to one journal, in as few appends as it took.
    const names = await readdir(dir);
    assert.equal(names.length, 1);
    assert.match(names[0]!, /^journal\.1\.[0-9a-f]{8}\.log$/);
    const lines = (await readFile(path.join(dir, names[0]!), 'utf8')).trim().split('\n');
    assert.equal(lines.length, 70);
    const read = await readInChild(dir, ['k', 'key/0', 'key/49']);
    assert.deepEqual(read.values, { k: { i: 19 }, 'key/0': { i: 0 }, 'key/49': { i: 49 } });
    assert.equal((read.keys as string[]).length, 51);
  });

  it('keeps keys that look like paths inside its directory', async () => {
    const dir = fresh();
    const store = new FileStore(dir);
    await store.put('../escape', { x: 1 });
    await store.compact();
    assert.deepEqual(await readdir(dir), ['%2E%2E%2Fescape.json']);
    assert.deepEqual(await new FileStore(dir).get('../escape'), { x: 1 });
  });

  it('refuses a value that is not JSON, or an empty key, before touching the disk', async () => {
    const dir = fresh();
    const store = new FileStore(dir);
    await assert.rejects(store.put('k', { total: 5n } as never), /BigInt/);
    await assert.rejects(store.put('', { x: 1 }), /cannot be empty/);
    // Too long for a file name once escaped: refused now, not when a fold tries to write its file.
    await assert.rejects(store.put(`chit/${'ab/'.repeat(60)}`, { x: 1 }), /too long for a file name/);
    await store.put(`chit/${'a'.repeat(200)}`, { x: 1 }); // the longest that fits is taken
    assert.equal(await store.get('k'), undefined);
    assert.deepEqual(await store.keys(), [`chit/${'a'.repeat(200)}`]);
  });

  it('reads the directory again on its next use after a read that failed', async () => {
    const dir = fresh();
    await writeFile(dir, 'not a directory'); // the journals cannot be listed: ENOTDIR
    const store = new FileStore(dir);
    await assert.rejects(store.get('k'), { code: 'ENOTDIR' });
    await rm(dir);
    await store.put('k', { v: 1 });
    assert.deepEqual(await store.get('k'), { v: 1 });
  });

  it('shares its writes with every FileStore on the directory in this process', async () => {
    const dir = fresh();
    const first = new FileStore(dir);
    const second = new FileStore(dir);
    await first.get('k'); // both opened before any write
    await second.get('k');
    await first.put('k', { from: 'first' });
    assert.deepEqual(await second.get('k'), { from: 'first' });
    await second.put('k', { from: 'second' });
    assert.deepEqual(await first.get('k'), { from: 'second' });
    assert.deepEqual((await readInChild(dir, ['k'])).values, { k: { from: 'second' } });
  });

  it('reads a directory removed and written again by another process as that process left it', async () => {
    const dir = fresh();
    const store = new FileStore(dir);
    await store.put('k', { v: 'before' });
    await store.put('only-before', { v: 1 });
    await rm(dir, { recursive: true });
    // Another process (a backup's import) writes the directory afresh: its journal has the same seq.
    await child(dir, `await new FileStore(dir).put('k', { v: 'imported' });`);
    const reopened = new FileStore(dir);
    assert.deepEqual(await reopened.get('k'), { v: 'imported' });
    assert.equal(await reopened.get('only-before'), undefined);
    await reopened.put('k', { v: 'after' });
    assert.deepEqual((await readInChild(dir, ['k'])).values, { k: { v: 'after' } });
  });

  it('folds its journals once they pass journalBytes, and a restart reads the same values', async () => {
    const dir = fresh();
    const store = new FileStore(dir, { journalBytes: 2_000 });
    for (let round = 0; round < 30; round++) {
      await Promise.all(Array.from({ length: 8 }, (_, i) => store.put(`agreement/${i}`, { round, i })));
    }
    await store.compact();
    const names = await readdir(dir);
    assert.deepEqual(
      names.filter((name) => name.endsWith('.log')),
      [],
      'no journal left after compact()',
    );
    assert.equal(names.filter((name) => name.endsWith('.json')).length, 8);
    assert.deepEqual(
      names.filter((name) => name.endsWith('.tmp')),
      [],
    );
    const read = await readInChild(dir, ['agreement/0', 'agreement/7']);
    assert.deepEqual(read.values, { 'agreement/0': { round: 29, i: 0 }, 'agreement/7': { round: 29, i: 7 } });
  });

  it('reads a key from its journal over an older file, as after a crash in the middle of a fold', async () => {
    const dir = fresh();
    const store = new FileStore(dir);
    await store.put('k', { v: 'old' });
    await store.compact();
    await store.put('k', { v: 'new' });
    // The fold wrote an older value into the file and stopped before deleting the journal: the journal wins.
    await writeFile(path.join(dir, 'k.json'), JSON.stringify({ v: 'older still' }));
    assert.deepEqual((await readInChild(dir, ['k'])).values, { k: { v: 'new' } });
  });

  it('ignores a torn last line, and the next writer starts a journal of its own', async () => {
    const dir = fresh();
    const store = new FileStore(dir);
    await store.put('a', { n: 1 });
    await store.put('b', { n: 1 });
    const journal = path.join(dir, (await readdir(dir))[0]!);
    const text = await readFile(journal, 'utf8');
    const last = text.trim().split('\n').at(-1)!;
    // A crash in the middle of an append: a whole line whose checksum fails (its bytes garbled), then
    // half a line.
    await appendFile(journal, `${last.slice(0, 17)}{"k":"b","v":{"n":3}}\n`);
    await appendFile(journal, `${last.replace('"n":1', '"n":2').slice(0, -4)}\n`);
    await appendFile(journal, last.slice(0, 30));
    const read = await readInChild(dir, ['a', 'b']);
    assert.deepEqual(read.values, { a: { n: 1 }, b: { n: 1 } });
    const out = await child(
      dir,
      `const store = new FileStore(dir);
       await store.put('b', { n: 4 });
       process.stdout.write(JSON.stringify(await store.get('b')));`,
    );
    assert.deepEqual(JSON.parse(out), { n: 4 });
    assert.deepEqual((await readInChild(dir, ['a', 'b'])).values, { a: { n: 1 }, b: { n: 4 } });
  });

  it('keeps every acknowledged write when its process is killed in the middle of writing and folding', async () => {
    const dir = fresh();
    const acknowledged = new Map<string, number>();
    // Eight writers, each putting a new key and then overwriting its own last key, and saying so once the
    // put resolved; a small journal, so that folds run while the writes go on (the keys written once
    // live only in journals being folded). Killed after 400 acknowledged writes.
    await child(
      dir,
      `const store = new FileStore(dir, { journalBytes: 4096 });
       await Promise.all(Array.from({ length: 8 }, async (_, w) => {
         for (let i = 1; ; i++) {
           await store.put('once/' + w + '/' + i, { i });
           process.stdout.write('once/' + w + '/' + i + ' ' + i + '\\n');
           await store.put('last/' + w, { i, pad: 'x'.repeat(40) });
           process.stdout.write('last/' + w + ' ' + i + '\\n');
         }
       }));`,
      (line, kill) => {
        const [key, value] = line.split(' ');
        acknowledged.set(key!, Number(value));
        if (acknowledged.size === 400) kill();
      },
    );
    const keys = [...acknowledged.keys()];
    const read = await readInChild(dir, keys);
    const values = read.values as Record<string, { i: number } | null>;
    for (const key of keys) {
      // The last acknowledged write, or one after it that reached the disk before its acknowledgement did.
      assert.ok(
        (values[key]?.i ?? 0) >= acknowledged.get(key)!,
        `${key}: read ${values[key]?.i}, acknowledged ${acknowledged.get(key)}`,
      );
    }
    // A new writer on the same directory goes on from there.
    const out = await child(
      dir,
      `const store = new FileStore(dir);
       await store.put('last/0', { i: -1 });
       await store.compact();
       process.stdout.write(JSON.stringify(await store.get('last/0')));`,
    );
    assert.deepEqual(JSON.parse(out), { i: -1 });
    assert.deepEqual(
      (await readdir(dir)).filter((name) => !name.endsWith('.json')),
      [],
    );
  });
});
