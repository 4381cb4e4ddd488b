import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { loadConfig } from '../src/config/config';

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

  it('start names a bad CORS, proxy or rate limit setting', () => {
    const result = run(['start'], {
      DATABASE_URL: 'postgres://127.0.0.1/chit',
      RPC_URL: 'http://127.0.0.1:8545',
      HUB_ADDRESS: '0x0000000000000000000000000000000000000001',
      OPERATOR_KEY: `0x${'11'.repeat(32)}`,
      CORS_ORIGINS: 'https://wallet.example/app',
      TRUST_PROXY: 'true',
      RATE_LIMIT_MAX: '-1',
      RATE_LIMIT_WINDOW_MS: 'a minute',
    });
    assert.equal(result.status, 1);
    assert.equal(
      result.stderr,
      [
        'invalid configuration:',
        '  CORS_ORIGINS: expected *, none or a comma list of origins like https://wallet.example (scheme://host[:port], no path); "https://wallet.example/app" is not one',
        '  TRUST_PROXY: expected a number of hops or a comma list of proxy addresses, CIDR ranges, loopback, linklocal or uniquelocal; "true" is none',
        '  RATE_LIMIT_MAX: Too small: expected number to be >=0',
        '  RATE_LIMIT_WINDOW_MS: Invalid input: expected number, received NaN',
        '',
      ].join('\n'),
    );
  });
});

describe('HTTP edge settings', () => {
  const required = {
    DATABASE_URL: 'postgres://127.0.0.1/chit',
    RPC_URL: 'http://127.0.0.1:8545',
    HUB_ADDRESS: '0x0000000000000000000000000000000000000001',
    OPERATOR_KEY: `0x${'11'.repeat(32)}`,
  };
  const load = (env: Record<string, string>) => loadConfig({ ...required, ...env });

  it('default to any origin, no trusted proxy and 6,000 requests a minute per client', () => {
    const config = load({});
    assert.equal(config.CORS_ORIGINS, '*');
    assert.equal(config.TRUST_PROXY, false);
    assert.equal(config.RATE_LIMIT_MAX, 6_000);
    assert.equal(config.RATE_LIMIT_WINDOW_MS, 60_000);
  });

  it('read origins as browsers send them, none, proxies and 0 (no limit)', () => {
    assert.deepEqual(load({ CORS_ORIGINS: 'https://Wallet.example/, http://127.0.0.1:3000' }).CORS_ORIGINS, [
      'https://wallet.example',
      'http://127.0.0.1:3000',
    ]);
    assert.deepEqual(load({ CORS_ORIGINS: 'none' }).CORS_ORIGINS, []);
    assert.equal(load({ TRUST_PROXY: '2' }).TRUST_PROXY, 2);
    assert.deepEqual(load({ TRUST_PROXY: 'loopback, 10.0.0.0/8,fd00::/8' }).TRUST_PROXY, [
      'loopback',
      '10.0.0.0/8',
      'fd00::/8',
    ]);
    assert.equal(load({ RATE_LIMIT_MAX: '0' }).RATE_LIMIT_MAX, 0);
  });

  it('refuse an origin with a path, query or another scheme, and a range that is not one', () => {
    for (const origin of ['https://a.example/x', 'https://a.example?', 'ftp://a.example', '*, https://a.example']) {
      assert.throws(() => load({ CORS_ORIGINS: origin }), /\n {2}CORS_ORIGINS: expected \*, none or a comma list/);
    }
    for (const proxy of ['10.0.0.0/33', 'proxy.example', '::1/129', '100']) {
      assert.throws(() => load({ TRUST_PROXY: proxy }), /\n {2}TRUST_PROXY: expected a number of hops/);
    }
    assert.throws(() => load({ RATE_LIMIT_WINDOW_MS: '999' }), /\n {2}RATE_LIMIT_WINDOW_MS: /);
  });
});
