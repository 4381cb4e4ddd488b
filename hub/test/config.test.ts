import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

// Configuration is checked once, at start; a bad value stops the command with a message that names
// the variable (and never a stack trace or a raw validation dump).
describe('chit-hub configuration errors', () => {
  const main = path.join(__dirname, '..', 'dist', 'main.js');
  const run = (args: string[], env: Record<string, string>) =>
    spawnSync(process.execPath, [main, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8' });

  it('migrate names DATABASE_URL when it is missing or not a Postgres URL', () => {
    const missing = run(['migrate'], {});
    assert.equal(missing.status, 1);
    assert.equal(missing.stderr, 'invalid configuration:\n  DATABASE_URL: is required\n');
    const wrong = run(['migrate'], { DATABASE_URL: 'mysql://db/chit' });
    assert.equal(wrong.status, 1);
    assert.equal(wrong.stderr, 'invalid configuration:\n  DATABASE_URL: expected a postgres: or postgresql: URL\n');
  });

  it('start names every bad setting at once, and starts nothing', () => {
    const result = run(['start'], {
      DATABASE_URL: 'postgres://127.0.0.1/chit',
      RPC_URL: 'http://127.0.0.1:8545',
      HUB_ADDRESS: '0x1234',
      OPERATOR_KEY: '0xabc',
      HUB_ROLE: 'both',
    });
    assert.equal(result.status, 1);
    assert.match(result.stderr, /^invalid configuration:\n/);
    assert.match(result.stderr, /\n {2}HUB_ADDRESS: expected a 0x-prefixed 20-byte address\n/);
    assert.match(result.stderr, /\n {2}OPERATOR_KEY: expected a 0x-prefixed 32-byte private key\n/);
    assert.match(result.stderr, /\n {2}HUB_ROLE: /);
    assert.doesNotMatch(result.stderr, /at .*\.js:\d+/);
  });
});
