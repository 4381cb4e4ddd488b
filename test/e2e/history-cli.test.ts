import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseEther } from 'viem';
import { generatePrivateKey } from 'viem/accounts';
import { cleanEnv, runProcess } from './support/process';
import { type Consumer, type Provider, type Stack, startStack } from './support/stack';

const ROOT = path.join(__dirname, '..', '..');
const CHIT = path.join(ROOT, 'cli', 'bin', 'chit.js');

// `chit earnings` (issue 16): a provider's earnings over time and its CSV exports, read from the real
// hub's history after the command signs in with the provider's keystore.
describe('chit earnings', function () {
  this.timeout(300_000);
  let stack: Stack;
  let provider: Provider;
  let consumer: Consumer;
  let home: string;
  const prices = { perMinute: parseEther('0.001'), perGiB: 0n };

  const chit = (args: string[]) =>
    runProcess(process.execPath, [CHIT, ...args], {
      cwd: ROOT,
      env: cleanEnv({
        XDG_CONFIG_HOME: home,
        CHIT_HUB_URL: stack.hub.url,
        CHIT_RPC_URL: stack.chain.url,
        CHIT_PASSWORD: 'password of the provider',
      }),
    });

  /** What the provider was paid through the hub: the agreement's total after three payments. */
  let earned = 0n;

  before(async () => {
    stack = await startStack();
    const key = generatePrivateKey();
    [provider, consumer] = await Promise.all([
      stack.newProvider({ key }),
      stack.newConsumer({ deposit: parseEther('1') }),
    ]);
    home = mkdtempSync(path.join(tmpdir(), 'chit-earnings-'));
    const keyFile = path.join(home, 'key.txt');
    writeFileSync(keyFile, key);
    const imported = await chit(['identity', 'import', '--private-key-file', keyFile, '--json']);
    assert.equal(imported.code, 0, imported.stderr);
    const link = stack.connect(consumer, provider, { prices, intervalMs: 60_000 });
    for (const minutes of [3, 5, 2]) {
      stack.clock.advance(minutes * 60_000);
      const { invoice } = await link.step();
      earned = invoice.agreementTotal;
    }
    link.close();
    assert.equal(earned, parseEther('0.01'));
  });

  after(async () => {
    await stack?.stop();
    if (home) rmSync(home, { recursive: true, force: true });
  });

  it('shows the earnings per day with the hub fee and the books, as a table or JSON', async () => {
    const json = await chit(['earnings', '--json']);
    assert.equal(json.code, 0, json.stderr);
    const history = JSON.parse(json.stdout);
    assert.equal(history.provider, provider.address);
    assert.equal(history.buckets.length, 30);
    assert.equal(BigInt(history.total.amount), earned);
    assert.equal(history.total.exchanges, 3);
    assert.equal(BigInt(history.total.hubFee), (earned * BigInt(history.fee)) / 10_000n);
    assert.deepEqual(history.books, { promised: earned.toString(), settled: '0', unsettled: earned.toString() });

    const human = await chit(['earnings']);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^DAY \(UTC\)\s+EARNED\s+HUB FEE\s+EXCHANGES/m);
    assert.match(human.stdout, /Earned in the range:\s+0\.01 /);
    assert.match(human.stdout, /Unsettled:\s+0\.01 /);
  });

  it('exports the hourly earnings and the settlements as CSV, to stdout or a file', async () => {
    const csv = await chit(['earnings', '--csv', '--bucket', 'hour']);
    assert.equal(csv.code, 0, csv.stderr);
    const lines = csv.stdout.trimEnd().split('\r\n');
    assert.equal(lines[0], 'start,amount,hubFee,exchanges');
    assert.equal(lines.length, 1 + 30 * 24);
    assert.equal(
      lines.slice(1).reduce((sum, line) => sum + BigInt(line.split(',')[1]!), 0n),
      earned,
    );
    const file = path.join(home, 'settlements.csv');
    const written = await chit(['earnings', '--csv', '--settlements', '--output', file]);
    assert.equal(written.code, 0, written.stderr);
    assert.equal(
      readFileSync(file, 'utf8'),
      'id,status,total,amount,hubFee,relayerFee,payout,txHash,gasUsed,errorCode,error,createdAt,updatedAt\r\n',
    );
  });

  it('refuses a range that ends before it starts, naming the option', async () => {
    const refused = await chit(['earnings', '--from', '2026-12-05', '--to', '2026-12-01']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /--from must be before --to/);
    const bad = await chit(['earnings', '--from', 'yesterday']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--from: not a date: yesterday/);
  });
});
