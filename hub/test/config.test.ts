import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '@chit/devstack';
import { loadConfig } from '../src/config/config';
import { startChain } from './support/chain';
import { createTestDatabase } from './support/postgres';

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

describe('keys from files (Docker and Kubernetes secrets)', () => {
  const required = {
    DATABASE_URL: 'postgres://127.0.0.1/chit',
    RPC_URL: 'http://127.0.0.1:8545',
    HUB_ADDRESS: '0x0000000000000000000000000000000000000001',
  };
  const operatorKey = `0x${'11'.repeat(32)}`;
  const relayerKey = `0x${'22'.repeat(32)}`;
  let dir: string;
  const file = (name: string, content: string) => {
    const target = path.join(dir, name);
    writeFileSync(target, content);
    return target;
  };
  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'chit-config-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reads OPERATOR_KEY_FILE and RELAYER_KEY_FILE, without the final newline', () => {
    const config = loadConfig({
      ...required,
      OPERATOR_KEY_FILE: file('operator.key', `${operatorKey}\n`),
      RELAYER_KEY_FILE: file('relayer.key', `${relayerKey}\r\n`),
    });
    assert.equal(config.OPERATOR_KEY, operatorKey);
    assert.equal(config.RELAYER_KEY, relayerKey);
  });

  it('names OPERATOR_KEY_FILE when the file cannot be read', () => {
    const missing = path.join(dir, 'missing.key');
    assert.throws(
      () => loadConfig({ ...required, OPERATOR_KEY_FILE: missing }),
      new RegExp(
        `^ConfigError: invalid configuration:\\n {2}OPERATOR_KEY_FILE: cannot read ${missing} \\(ENOENT: no such file or directory\\)$`,
      ),
    );
    assert.throws(
      () => loadConfig({ ...required, OPERATOR_KEY_FILE: dir }),
      /\n {2}OPERATOR_KEY_FILE: cannot read .* \(EISDIR: illegal operation on a directory\)$/,
    );
  });

  it('names OPERATOR_KEY_FILE, and never the content, when the file holds no key', () => {
    const wrong = file('wrong.key', 'postgres://chit:hunter2@db/chit\n');
    assert.throws(
      () => loadConfig({ ...required, OPERATOR_KEY_FILE: wrong }),
      (error: Error) => {
        assert.equal(
          error.message,
          `invalid configuration:\n  OPERATOR_KEY_FILE: ${wrong}: expected a 0x-prefixed 32-byte private key`,
        );
        return true;
      },
    );
  });

  it('refuses a key both in the environment and in a file, naming the setting', () => {
    assert.throws(
      () =>
        loadConfig({
          ...required,
          OPERATOR_KEY: operatorKey,
          OPERATOR_KEY_FILE: file('both.key', operatorKey),
          RELAYER_KEY: relayerKey,
          RELAYER_KEY_FILE: file('relayer-both.key', relayerKey),
        }),
      (error: Error) => {
        assert.equal(
          error.message,
          [
            'invalid configuration:',
            '  OPERATOR_KEY_FILE: set either OPERATOR_KEY or OPERATOR_KEY_FILE, not both',
            '  RELAYER_KEY_FILE: set either RELAYER_KEY or RELAYER_KEY_FILE, not both',
          ].join('\n'),
        );
        return true;
      },
    );
  });

  it('says a missing operator key may come from either, in the order of the settings', () => {
    assert.throws(
      () => loadConfig({ DATABASE_URL: required.DATABASE_URL, OPERATOR_KEY_FILE: path.join(dir, 'missing.key') }),
      (error: Error) => {
        assert.deepEqual(error.message.split('\n'), [
          'invalid configuration:',
          '  RPC_URL: is required',
          '  HUB_ADDRESS: is required',
          `  OPERATOR_KEY_FILE: cannot read ${path.join(dir, 'missing.key')} (ENOENT: no such file or directory)`,
        ]);
        return true;
      },
    );
    assert.throws(
      () => loadConfig(required),
      /\n {2}OPERATOR_KEY: is required \(or OPERATOR_KEY_FILE, a file that holds it\)$/,
    );
  });

  it('chit-hub start reads the key file', () => {
    const main = path.join(__dirname, '..', 'dist', 'main.js');
    const result = spawnSync(process.execPath, [main, 'start'], {
      env: {
        PATH: process.env.PATH ?? '',
        ...required,
        HUB_ADDRESS: '0x1234',
        OPERATOR_KEY_FILE: file('cli.key', operatorKey),
      },
      encoding: 'utf8',
    });
    assert.equal(result.status, 1);
    // The key was read (it is not named); the bad address stops it before anything starts.
    assert.equal(result.stderr, 'invalid configuration:\n  HUB_ADDRESS: expected a 0x-prefixed 20-byte address\n');
  });
});

// Start-up checks against the chain: a dead RPC, or HUB_ADDRESS not a hub, stops `chit-hub start` with
// one line that names the setting, what is wrong and what to do.
describe('chit-hub start on a chain it cannot use', () => {
  const main = path.join(__dirname, '..', 'dist', 'main.js');
  let chain: Awaited<ReturnType<typeof startChain>>;
  const start = (env: Record<string, string>) =>
    spawnSync(process.execPath, [main, 'start'], {
      env: {
        PATH: process.env.PATH ?? '',
        DATABASE_URL: 'postgres://127.0.0.1/chit',
        OPERATOR_KEY: chain.operatorKey,
        ...env,
      },
      encoding: 'utf8',
      timeout: 50_000,
    });

  before(async function () {
    this.timeout(120_000);
    chain = await startChain();
  });

  after(() => chain?.stop());

  it('names RPC_URL when nothing listens there, without the path (it may hold an API key)', async function () {
    this.timeout(60_000);
    const port = await freePort();
    const result = start({
      RPC_URL: `http://127.0.0.1:${port}/v3/secret-key`,
      HUB_ADDRESS: chain.deployment.hub.address,
    });
    assert.equal(result.status, 1, result.stderr);
    assert.equal(
      result.stderr,
      `chit-hub: RPC_URL: no answer from the chain RPC at http://127.0.0.1:${port} (HTTP request failed. fetch failed (ECONNREFUSED)): start the node, or point RPC_URL at one that runs\n`,
    );
  });

  it('names HUB_ADDRESS when no contract is there', function () {
    this.timeout(60_000);
    const nobody = '0x000000000000000000000000000000000000dEaD';
    const result = start({ RPC_URL: chain.url, HUB_ADDRESS: nobody });
    assert.equal(result.status, 1, result.stderr);
    assert.equal(
      result.stderr,
      `chit-hub: HUB_ADDRESS: there is no contract at ${nobody} on chain 31337: set it to the address of the Hub contract this service runs (deployments/31337.json, hub.address)\n`,
    );
  });

  it('names HUB_ADDRESS when the contract there is not a hub', function () {
    this.timeout(60_000);
    const token = chain.deployment.token.address;
    const result = start({ RPC_URL: chain.url, HUB_ADDRESS: token.toLowerCase() });
    assert.equal(result.status, 1, result.stderr);
    assert.equal(
      result.stderr,
      `chit-hub: HUB_ADDRESS: the contract at ${token} on chain 31337 is not a Chit hub: set it to the address of the Hub contract this service runs (deployments/31337.json, hub.address)\n`,
    );
  });

  it('names REDIS_URL when nothing listens there, and logs only JSON lines before it stops', async function () {
    this.timeout(60_000);
    const database = await createTestDatabase();
    try {
      const port = await freePort();
      const result = start({
        DATABASE_URL: database.url,
        RPC_URL: chain.url,
        HUB_ADDRESS: chain.deployment.hub.address,
        REDIS_URL: `redis://user:secret@127.0.0.1:${port}/0`,
      });
      assert.equal(result.status, 1, result.stderr);
      assert.equal(
        result.stderr,
        `chit-hub: REDIS_URL: no answer from Redis at redis://127.0.0.1:${port} (connect ECONNREFUSED 127.0.0.1:${port}): start Redis, or point REDIS_URL at one that runs\n`,
      );
      // Nest's coloured console lines would be there before the application's own logger.
      const lines = result.stdout.split('\n').filter(Boolean);
      assert.ok(lines.length > 0, 'the outage is logged');
      for (const line of lines) assert.equal(typeof JSON.parse(line).msg, 'string', line);
    } finally {
      await database.drop();
    }
  });

  it('names an address whose EIP-55 checksum is wrong, and accepts it in lowercase', () => {
    const hub = chain.deployment.hub.address;
    // One letter's case flipped: the checksum no longer matches.
    const index = [...hub].findIndex((char, i) => i > 1 && /[a-fA-F]/.test(char));
    const flipped =
      hub.slice(0, index) +
      (hub[index] === hub[index]!.toLowerCase() ? hub[index]!.toUpperCase() : hub[index]!.toLowerCase()) +
      hub.slice(index + 1);
    const result = start({ RPC_URL: chain.url, HUB_ADDRESS: flipped });
    assert.equal(result.status, 1, result.stderr);
    assert.equal(
      result.stderr,
      'invalid configuration:\n  HUB_ADDRESS: mixed-case letters that do not match its EIP-55 checksum: copy the address again from where it came from (a typo?), or write it all in lowercase to skip the check\n',
    );
    const settings = { DATABASE_URL: 'postgres://127.0.0.1/chit', RPC_URL: chain.url, OPERATOR_KEY: chain.operatorKey };
    assert.equal(loadConfig({ ...settings, HUB_ADDRESS: hub.toLowerCase() }).HUB_ADDRESS, hub.toLowerCase());
  });
});
