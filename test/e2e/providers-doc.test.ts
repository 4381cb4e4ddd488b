import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from '@chit/devstack';
import { hubAbi } from '@chit/sdk';
import { decryptKeystoreJson } from 'ethers';
import Redis from 'ioredis';
import { Pool } from 'pg';
import { type Address, createPublicClient, http, parseEther } from 'viem';
import { foundry } from 'viem/chains';
import { cleanEnv, type Run, runProcess } from './support/process';

const ROOT = path.join(__dirname, '..', '..');
const PASSWORD = 'a password for the docs';

/** Runs `command args…` from the repository root, as a user of the checkout would, with `env` added. */
function run(command: string, args: string[], env: Record<string, string>): Promise<Run> {
  return runProcess(command, args, { cwd: ROOT, env: cleanEnv(env) });
}

function succeeded(result: Run): string {
  assert.equal(result.code, 0, `exit ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
  return result.stdout;
}

interface Background {
  child: ChildProcess;
  output: () => string;
  stop: () => Promise<void>;
}

/** Starts `command args…` from the repository root in a process group of its own, as `&` or a terminal would. */
function background(command: string, args: string[], env: Record<string, string>): Background {
  const base = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^(npm_|CHIT_)/i.test(key)));
  const child = spawn(command, args, {
    cwd: ROOT,
    env: { ...base, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  child.stdout?.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    output += chunk;
  });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    // The whole group: npx and the node it runs.
    process.kill(-child.pid, 'SIGTERM');
    const timer = setTimeout(() => child.pid && process.kill(-child.pid, 'SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  return { child, output: () => output, stop };
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

  // Issue 14: docs/sellers.md section 1, the five minutes with the gateway, command by command, with the
  // toy API and the gateway on free ports instead of 3000 and 8402, and the seller in a config folder
  // of its own (the providers' identity above holds the default one).
  describe('docs/sellers.md section 1', () => {
    const sellers = readFileSync(path.join(ROOT, 'docs', 'sellers.md'), 'utf8');
    /** A command line of docs/sellers.md, checked to be there as written. */
    const documented = (line: string) => {
      assert.ok(sellers.includes(line), `docs/sellers.md no longer says: ${line}`);
      return line;
    };
    const TOY_API = documented(
      `node -e "require('http').createServer((req, res) => res.end(JSON.stringify({ path: req.url, sunny: true }))).listen(3000)" &`,
    );
    const PROVIDE = documented('npx chit provide http --upstream http://127.0.0.1:3000 --price-per-request 0.001');
    const CURL = documented('curl -si http://127.0.0.1:8402/weather | head -1');
    const PAY = documented('npx chit pay http://127.0.0.1:8402/weather --max-price-per-request 0.001');
    const BENEFICIARY = '0x90F79bf6EB2c4f870365E785982E1f101E93b906';
    documented(`npx chit beneficiary set ${BENEFICIARY}`);
    documented('npx chit deposit 10');
    documented('export CHIT_KEYSTORE=~/chit-buyer.json CHIT_STORE=~/chit-buyer-store');

    let api: Background | undefined;
    let gateway: Background | undefined;
    let apiPort: number;
    let gatewayPort: number;
    /** A documented line on the test's ports. */
    const ports = (line: string) =>
      line
        .replaceAll('127.0.0.1:3000', `127.0.0.1:${apiPort}`)
        .replaceAll('.listen(3000)', `.listen(${apiPort})`)
        .replaceAll('127.0.0.1:8402', `127.0.0.1:${gatewayPort}`);
    const seller = () => ({ XDG_CONFIG_HOME: path.join(home, 'seller-config') });
    const buyer = () => ({
      CHIT_KEYSTORE: path.join(home, 'chit-buyer.json'),
      CHIT_STORE: path.join(home, 'chit-buyer-store'),
    });
    /** The words of a documented `npx chit …` line after `npx chit`, on the test's ports. */
    const words = (line: string) => ports(line).split(' ').slice(2);

    before(async () => {
      [apiPort, gatewayPort] = [await freePort(), await freePort()];
    });

    after(async () => {
      await gateway?.stop();
      await api?.stop();
    });

    it('the seller: an identity, funded, with a beneficiary; the toy API and chit provide http in front of it', async () => {
      const created = await json(['identity', 'new'], seller());
      await json(['identity', 'fund'], seller());
      const registered = succeeded(await chit(['beneficiary', 'set', BENEFICIARY], seller()));
      assert.match(registered, new RegExp(`is registered, with ${BENEFICIARY} as its beneficiary`));

      api = background('sh', ['-c', ports(TOY_API).replace(/ &$/, '')], {});
      const upstream = ports('http://127.0.0.1:3000');
      const deadline = Date.now() + 20_000;
      for (;;) {
        const answer = await fetch(`${upstream}/weather`).catch(() => undefined);
        if (answer) {
          assert.deepEqual(await answer.json(), { path: '/weather', sunny: true });
          break;
        }
        if (Date.now() > deadline) throw new Error(`the toy API did not answer:\n${api.output()}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }

      // The gateway's default port is 8402: here it gets a free one.
      gateway = background('npx', ['--no', '--', 'chit', ...words(PROVIDE), '--port', String(gatewayPort)], {
        XDG_CONFIG_HOME: path.join(home, 'seller-config'),
        HOME: home,
        CHIT_RPC_URL: chainUrl,
        CHIT_HUB_URL: hubUrl,
        CHIT_PASSWORD: PASSWORD,
      });
      const started = Date.now() + 60_000;
      while (!gateway.output().includes('Press Ctrl-C to stop.')) {
        if (gateway.child.exitCode !== null) throw new Error(`chit provide http exited:\n${gateway.output()}`);
        if (Date.now() > started) throw new Error(`chit provide http did not start:\n${gateway.output()}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const banner = gateway.output();
      assert.ok(banner.includes(ports('Selling http://127.0.0.1:3000 at http://127.0.0.1:8402\n')), banner);
      assert.ok(banner.includes('Price:      0.001 tCHIT per request, 0 tCHIT per MiB of response\n'), banner);
      assert.ok(banner.includes(`Provider:   ${created.address}\n`), banner);
      assert.ok(banner.includes('Settlement: by hand: chit settle\n'), banner);
    });

    it('curl: a request without a payment is 402', async () => {
      const result = await run('sh', ['-c', ports(CURL)], {});
      assert.equal(succeeded(result).trimEnd(), 'HTTP/1.1 402 Payment Required');
    });

    it('the buyer: its own identity and deposit, then chit pay pays 0.001 tCHIT and prints the body', async () => {
      await json(['identity', 'new'], buyer());
      await json(['identity', 'fund'], buyer());
      await json(['deposit', '10'], buyer());
      // As the docs say: pay once chit balance shows the deposit at the hub.
      const seen = Date.now() + 30_000;
      while ((await json(['balance'], buyer())).consumer.hub?.available !== '10') {
        if (Date.now() > seen) throw new Error('the hub did not show the deposit within 30 s');
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      const paid = await chit(words(PAY), buyer());
      assert.equal(succeeded(paid), JSON.stringify({ path: '/weather', sunny: true }));
      assert.equal(paid.stderr, '200 OK: paid 0.001 tCHIT\n');
      assert.match(gateway?.output() ?? '', /GET \/weather → 200, 32 bytes/);
    });

    it('the seller: chit balance shows the 0.001 tCHIT, chit settle --yes pays the beneficiary less the hub fee', async () => {
      const balance = await json(['balance'], seller());
      assert.deepEqual(
        [balance.provider.hub.earned, balance.provider.hub.unsettled],
        ['0.001', '0.001'],
        JSON.stringify(balance.provider),
      );
      const settled = succeeded(await chit(['settle', '--yes'], seller()));
      assert.ok(
        settled.includes(
          `Settled: 0.00099 tCHIT paid to ${BENEFICIARY} (0.001 tCHIT settled, less the hub fee of 0.00001 tCHIT).`,
        ),
        settled,
      );
    });
  });
});
