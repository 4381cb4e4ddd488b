import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

// The SDK's core must run in browsers: only src/node may use Node's built-in modules or packages with
// native bindings (the command line is @chit/cli, cli/).
const src = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src');
const NODE_ONLY_DIRS = new Set(['node']);
const FORBIDDEN =
  /from\s+'(node:[^']+|fs|path|os|crypto|child_process|net|http|https|module|url|secp256k1|keccak|node-gyp-build)(\/[^']*)?'/;

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return NODE_ONLY_DIRS.has(name) && dir === src ? [] : files(full);
    return name.endsWith('.ts') ? [full] : [];
  });
}

describe('browser-safe core', () => {
  it('imports no Node built-in or native package outside src/node', () => {
    const offenders = files(src).filter((file) => FORBIDDEN.test(readFileSync(file, 'utf8')));
    assert.deepEqual(
      offenders.map((file) => path.relative(src, file)),
      [],
    );
  });

  it('would notice one', () => {
    assert.ok(FORBIDDEN.test("import { readFileSync } from 'node:fs';"));
    assert.ok(FORBIDDEN.test("import secp from 'secp256k1';"));
    assert.ok(!FORBIDDEN.test("import { keccak_256 } from '@noble/hashes/sha3';"));
  });
});
