import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from '@chit/devstack';
import { parseEther } from 'viem';
import { generatePrivateKey } from 'viem/accounts';
import { MIB } from './support/figures';
import { cleanEnv, type Run, runProcess } from './support/process';
import { type Consumer, type Provider, type Stack, startStack, until } from './support/stack';

const ROOT = path.join(__dirname, '..', '..');
const CHIT = path.join(ROOT, 'cli', 'bin', 'chit.js');
const MILLI = 10n ** 15n; // 0.001 token

// `chit provide http` and `chit pay` (issue 14) as a seller and a buyer use them: two identities in
// keystores of their own, the gateway as its own process in front of a toy API, restarted mid-way.
describe('chit provide http and chit pay', function () {
  this.timeout(300_000);

  let stack: Stack;
  let seller: Provider;
  let buyer: Consumer;
  let upstream: Server;
  let upstreamUrl: string;
  let gateway: ChildProcess | undefined;
  let gatewayUrl: string;
  let gatewayOutput = '';
  let gatewayStdout = '';
  const homes: Record<'seller' | 'buyer', string> = { seller: '', buyer: '' };
  let hits = 0;

  const env = (who: 'seller' | 'buyer') =>
    cleanEnv({
      XDG_CONFIG_HOME: homes[who],
      CHIT_HUB_URL: stack.hub.url,
      CHIT_RPC_URL: stack.chain.url,
      CHIT_PASSWORD: `password of the ${who}`,
    });
  const chit = (who: 'seller' | 'buyer', args: string[]): Promise<Run> =>
    runProcess(process.execPath, [CHIT, ...args], { cwd: ROOT, env: env(who) });
  const ok = (run: Run) => {
    assert.equal(run.code, 0, `exit ${run.code}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
    return run;
  };

  const startGateway = async (port: number) => {
    gatewayOutput = '';
    gatewayStdout = '';
    gateway = spawn(
      process.execPath,
      [
        CHIT,
        'provide',
        'http',
        '--upstream',
        upstreamUrl,
        '--price-per-request',
        '0.001',
        '--price-per-mib',
        '0.01',
        '--port',
        String(port),
        '--json',
      ],
      { cwd: ROOT, env: env('seller'), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    gateway.stdout?.on('data', (chunk) => {
      gatewayOutput += chunk;
      gatewayStdout += chunk;
    });
    gateway.stderr?.on('data', (chunk) => {
      gatewayOutput += chunk;
    });
    const started = await until(
      'chit provide http to print its URL',
      async () => {
        if (gateway?.exitCode !== null) throw new Error(`chit provide http exited:\n${gatewayOutput}`);
        // --json: one JSON document on stdout once the gateway listens.
        if (!gatewayStdout.trimEnd().endsWith('}')) return undefined;
        return JSON.parse(gatewayStdout) as { url: string; provider: string; pricePerRequest: string };
        // Unlocking the keystore (scrypt) and opening the ledger take a while on a loaded machine.
      },
      90_000,
    ).catch((error: Error) => {
      throw new Error(`${error.message}; its output:\n${gatewayOutput}`);
    });
    assert.equal(started.provider, seller.address);
    assert.equal(started.pricePerRequest, '0.001');
    gatewayUrl = started.url;
  };
  const stopGateway = async () => {
    if (!gateway || gateway.exitCode !== null) return;
    const exited = new Promise((resolve) => gateway?.once('exit', resolve));
    gateway.kill('SIGTERM');
    await exited;
  };

  before(async () => {
    stack = await startStack();
    const sellerKey = generatePrivateKey();
    const buyerKey = generatePrivateKey();
    [seller, buyer] = await Promise.all([
      stack.newProvider({ key: sellerKey }),
      stack.newConsumer({ key: buyerKey, deposit: parseEther('1') }),
    ]);
    for (const [who, key] of [
      ['seller', sellerKey],
      ['buyer', buyerKey],
    ] as const) {
      homes[who] = mkdtempSync(path.join(tmpdir(), `chit-x402-${who}-`));
      const keyFile = path.join(homes[who], 'key.txt');
      writeFileSync(keyFile, key);
      ok(await chit(who, ['identity', 'import', '--private-key-file', keyFile, '--json']));
    }
    upstream = createServer((request, response) => {
      hits += 1;
      const size = Number(/^\/bytes\/(\d+)$/.exec(request.url ?? '')?.[1] ?? 2);
      response.end(Buffer.alloc(size, 0x62));
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', () => resolve()));
    upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    await startGateway(await freePort());
  });

  after(async () => {
    await stopGateway();
    upstream?.close();
    await stack?.stop();
    for (const home of Object.values(homes)) if (home) rmSync(home, { recursive: true, force: true });
  });

  const payArgs = ['--max-price-per-request', '0.001', '--max-price-per-mib', '0.01'];

  it('chit pay pays the gateway and prints the body; the response size is paid with the next request', async () => {
    const out = path.join(homes.buyer, 'first.bin');
    const first = ok(await chit('buyer', ['pay', `${gatewayUrl}/bytes/300000`, ...payArgs, '-o', out]));
    assert.equal(readFileSync(out).length, 300_000);
    assert.match(first.stderr, /^200 OK: paid 0\.001 tCHIT\n$/);
    const second = ok(await chit('buyer', ['pay', `${gatewayUrl}/bytes/5`, ...payArgs]));
    assert.equal(second.stdout, 'bbbbb');
    // 0.001 for the request, and 300,000 bytes at 0.01 per MiB, rounded up to the base unit.
    const perBytes = (300_000n * 10n * MILLI + MIB - 1n) / MIB;
    const paid = MILLI + perBytes;
    assert.match(second.stderr, new RegExp(`paid ${(Number(paid) / 1e18).toString().replace('.', '\\.')}`));
    assert.equal(hits, 2);
    assert.equal((await stack.hub.client.provider(seller.address)).earned, 2n * MILLI + perBytes);
  });

  it('a seller dearer than the buyer allows is not paid, and chit pay says why', async () => {
    const run = await chit('buyer', ['pay', `${gatewayUrl}/bytes/5`, '--max-price-per-request', '0.0005']);
    assert.equal(run.code, 1);
    assert.match(
      run.stderr,
      /^error: The seller asks 0\.001 tCHIT per request and 0\.01 tCHIT per MiB; you allow 0\.0005 per request and 0 per MiB\n/,
    );
    assert.match(run.stderr, /Nothing was signed/);
    assert.equal(hits, 2, 'the API never saw it');
  });

  it('the gateway restarted on the same store takes the next payment of the same agreement', async () => {
    const earned = (await stack.hub.client.provider(seller.address)).earned;
    await stopGateway();
    await startGateway(Number(new URL(gatewayUrl).port));
    const run = ok(await chit('buyer', ['pay', `${gatewayUrl}/bytes/7`, ...payArgs]));
    assert.equal(run.stdout, 'bbbbbbb');
    const perBytes = (5n * 10n * MILLI + MIB - 1n) / MIB;
    assert.equal((await stack.hub.client.provider(seller.address)).earned, earned + MILLI + perBytes);
    assert.equal((await stack.hub.client.consumer(buyer.address)).credited, earned + MILLI + perBytes);
    assert.ok(gatewayOutput.includes('"type":"forwarded"'), gatewayOutput);
  });
});
