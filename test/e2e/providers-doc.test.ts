import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { hubAbi } from '@chit/sdk';
import { decryptKeystoreJson } from 'ethers';
import Redis from 'ioredis';
import { Pool } from 'pg';
import { type Address, createPublicClient, http, parseEther } from 'viem';
import { foundry } from 'viem/chains';
import { freePort } from '../../hub/src/dev/services';

const ROOT = path.join(__dirname, '..', '..');
const PASSWORD = 'a password for the docs';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `command args…` from the repository root, as a user of the checkout would, with `env` added. */
function run(command: string, args: string[], env: Record<string, string>): Promise<Run> {
  // npm's settings of an enclosing `npm test` (workspace, prefix…) must not steer npx.
  const base = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^(npm_|CHIT_)/i.test(key)));
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function succeeded(result: Run): string {
  assert.equal(result.code, 0, `exit ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
  return result.stdout;
}

// Issue 11: docs/providers.md followed command by command by a new node runner, against the stack of
// `npm start` (scripts/start.ts, on ports of its own), with `npx chit` as the docs write it.
describe('docs/providers.md against the stack of npm start', function () {
  this.timeout(300_000);

  let start: ChildProcess | undefined;
  let banner = '';
  let chainUrl: string;
  let hubUrl: string;
  let home: string;
  let database: string;
  let queuePrefix: string;
  let admin: Pool | undefined;

  /** `npx chit args…` with the settings the docs export. */
  const chit = (args: string[], env: Record<string, string> = {}) =>
    run('npx', ['--no', '--', 'chit', ...args], {
      XDG_CONFIG_HOME: path.join(home, 'config'),
      HOME: home,
      CHIT_RPC_URL: chainUrl,
      CHIT_HUB_URL: hubUrl,
      CHIT_PASSWORD: PASSWORD,
      ...env,
    });
  // biome-ignore lint/suspicious/noExplicitAny: chit's JSON output, checked field by field.
  const json = async (args: string[], env: Record<string, string> = {}): Promise<any> =>
    JSON.parse(succeeded(await chit([...args, '--json'], env)));

  before(async () => {
    home = mkdtempSync(path.join(tmpdir(), 'chit-providers-doc-'));
    const postgres = process.env.CHIT_E2E_POSTGRES_URL;
    const redis = process.env.CHIT_E2E_REDIS_URL;
    if (!postgres || !redis) throw new Error('run the e2e suite with mocha --config test/e2e/.mocharc.json');
    admin = new Pool({ connectionString: postgres, max: 1 });
    admin.on('error', () => {});
    database = `chit_docs_${randomBytes(6).toString('hex')}`;
    await admin.query(`CREATE DATABASE ${database}`);
    const databaseUrl = new URL(postgres);
    databaseUrl.pathname = `/${database}`;
    queuePrefix = `chit-docs-${randomBytes(6).toString('hex')}`;

    const [chainPort, hubPort] = [await freePort(), await freePort()];
    chainUrl = `http://127.0.0.1:${chainPort}`;
    hubUrl = `http://127.0.0.1:${hubPort}`;
    start = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', path.join('scripts', 'start.ts')], {
      cwd: ROOT,
      env: {
        ...process.env,
        CHIT_CHAIN_PORT: String(chainPort),
        CHIT_HUB_PORT: String(hubPort),
        DATABASE_URL: databaseUrl.toString(),
        REDIS_URL: redis,
        QUEUE_PREFIX: queuePrefix,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    start.stdout?.on('data', (chunk) => {
      banner += chunk;
    });
    start.stderr?.on('data', (chunk) => {
      banner += chunk;
    });
    const deadline = Date.now() + 180_000;
    while (!banner.includes('Hub running at')) {
      if (start.exitCode !== null) throw new Error(`scripts/start.ts exited (${start.exitCode}):\n${banner}`);
      if (Date.now() > deadline) throw new Error(`npm start did not say the hub runs within 180 s:\n${banner}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  });

  after(async () => {
    if (start && start.exitCode === null) {
      const exited = new Promise((resolve) => start?.once('exit', resolve));
      start.kill('SIGINT');
      const timer = setTimeout(() => start?.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    }
    await admin?.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).catch(() => {});
    await admin?.end();
    const client = new Redis(process.env.CHIT_E2E_REDIS_URL ?? '', { lazyConnect: true, maxRetriesPerRequest: 1 });
    client.on('error', () => {});
    await client.connect().catch(() => {});
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${queuePrefix}:*`, 'COUNT', 1000).catch(() => ['0', []]);
      cursor = next as string;
      if (keys.length > 0) await client.del(...(keys as string[]));
    } while (cursor !== '0');
    client.disconnect();
    if (home) rmSync(home, { recursive: true, force: true });
  });

  it('npm start gives the hub free funds, and its banner says how much', async () => {
    const hub = /^Hub +(0x[0-9a-fA-F]{40}) \(stake 1,000 tCHIT, free funds 1,000 tCHIT/m.exec(banner)?.[1];
    assert.ok(hub, banner);
    const client = createPublicClient({ chain: foundry, transport: http(chainUrl) });
    const freeFunds = await client.readContract({ address: hub as Address, abi: hubAbi, functionName: 'freeFunds' });
    assert.equal(freeFunds, parseEther('1000'));
  });

  it("npm start's banner ends with the next steps, for the stack's own URLs", () => {
    const steps = banner.slice(banner.indexOf('Next, in another terminal'));
    assert.ok(steps.includes(`export CHIT_HUB_URL=${hubUrl} CHIT_RPC_URL=${chainUrl}`), banner);
    assert.ok(steps.includes('npx chit identity new && npx chit identity fund'), steps);
    // Not the default ports: the example needs them too.
    assert.ok(
      steps.includes(`HUB_URL=${hubUrl} RPC_URL=${chainUrl} node --import tsx examples/pay-per-minute.ts`),
      steps,
    );
  });

  it('section 1: a new identity, funded on the local chain, shows its ETH and tokens', async () => {
    const created = await json(['identity', 'new']);
    assert.equal(created.keystore, path.join(home, 'config', 'chit', 'keystore.json'));
    const funded = await json(['identity', 'fund']);
    assert.deepEqual([funded.address, funded.eth, funded.tokens], [created.address, '10', '1000']);
    const shown = await json(['identity', 'show']);
    assert.equal(shown.address, created.address);
    assert.equal(shown.tokens, '1000');
    assert.ok(Number(shown.eth) > 9.99, shown.eth);
  });

  it('section 2: beneficiary set registers it, sending the transaction itself', async () => {
    const beneficiary = '0x90F79bf6EB2c4f870365E785982E1f101E93b906';
    const out = succeeded(await chit(['beneficiary', 'set', beneficiary]));
    assert.match(out, new RegExp(`^0x[0-9a-fA-F]{40} is registered, with ${beneficiary} as its beneficiary\\.$`, 'm'));
  });

  it('section 2: --relayed registers an identity that holds tokens and no ETH, through the hub’s relayer', async () => {
    const env = { CHIT_KEYSTORE: path.join(home, 'gasless.json') };
    const created = await json(['identity', 'new'], env);
    const funded = await json(['identity', 'fund', '--eth', '0', '--tokens', '1'], env);
    assert.deepEqual([funded.address, funded.ethBalance, funded.tokenBalance], [created.address, '0', '1']);
    const beneficiary = '0x000000000000000000000000000000000000bEEF';
    const result = await chit(['beneficiary', 'set', beneficiary, '--relayed', '--json'], env);
    assert.equal(JSON.parse(succeeded(result)).beneficiary, beneficiary);
    assert.match(result.stderr, /with a permit that the relayer submits first/);
    const shown = await json(['identity', 'show'], env);
    assert.deepEqual([shown.registered, shown.beneficiary, shown.eth], [true, beneficiary, '0']);
    assert.ok(Number(shown.tokens) < 1, shown.tokens);
  });

  it('sections 3 and 5: earnings from examples/pay-per-minute.ts, settled by chit settle --yes from the free funds', async () => {
    // The identity's key, as the provider's ProviderLedger would hold it.
    const keystore = readFileSync(path.join(home, 'config', 'chit', 'keystore.json'), 'utf8');
    const { privateKey } = await decryptKeystoreJson(keystore, PASSWORD);
    const example = await run(process.execPath, ['--import', 'tsx', path.join('examples', 'pay-per-minute.ts')], {
      HUB_URL: hubUrl,
      RPC_URL: chainUrl,
      PROVIDER_KEY: privateKey,
      MINUTES: '2',
    });
    assert.match(succeeded(example), /the provider holds the hub promise of/);

    const balance = await json(['balance']);
    assert.ok(Number(balance.provider.hub.unsettled) > 0, JSON.stringify(balance.provider));
    const result = await chit(['settle', '--yes', '--json']);
    const settled = JSON.parse(succeeded(result));
    assert.equal(settled.fromStake, '0');
    assert.equal(settled.owed, balance.provider.hub.unsettled);
    assert.doesNotMatch(result.stderr, /warning/);
    const { hubs } = await json(['hubs']);
    assert.deepEqual(
      hubs.map((hub: { status: string }) => hub.status),
      ['active'],
    );
  });
});
