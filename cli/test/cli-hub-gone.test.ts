/**
 * The trust promise from the command line: a provider claims every hub promise on-chain even if the
 * hub vanishes. Providers earn through the real hub (hub/ as a process: support/hub-process.ts) on
 * anvil (the SDK's sdk/test/support/chain.ts), each with a ProviderLedger on a FileStore of its own;
 * then the hub process is stopped for good, and `chit settle` / `chit withdraw` (run as a child process,
 * as in cli.test.ts) pay from the provider's store, with no hub URL or with one that no longer answers.
 * `chit store export|import` back the store up and restore it.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  chitTokenAbi,
  deposit,
  encodeMessage,
  getHubInfo,
  getProviderChannel,
  HubClient,
  newAgreementId,
  newHashlock,
  ProviderLedger,
  registerIdentity,
  type SignedHubPromise,
  signConsumerPromise,
  signHubPromise,
  waitForTransaction,
} from '@chit/sdk';
import { FileStore } from '@chit/sdk/node';
import { type Address, type Hex, parseEther } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { FIRST_HUB, startChain, type TestChain } from '../../sdk/test/support/chain.js';
import { type HubProcess, startHubProcess } from './support/hub-process.js';

const PACKAGE = fileURLToPath(new URL('..', import.meta.url));
const CLI = path.join(PACKAGE, 'src', 'main.ts');
const PASSWORD = 'correct horse battery staple';

let chain: TestChain;
let hub: HubProcess;
let home: string;
let operator: Address;
const consumer = privateKeyToAccount(generatePrivateKey());
let consumerTotal = 0n;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `chit args…` with the RPC URL, no hub URL, and `env` on top (undefined removes a variable). */
function chit(args: string[], env: Record<string, string | undefined> = {}, input = ''): Promise<Run> {
  const all: Record<string, string | undefined> = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.startsWith('CHIT_') && key !== 'XDG_CONFIG_HOME'),
  );
  Object.assign(
    all,
    { HOME: home, XDG_CONFIG_HOME: path.join(home, 'config'), CHIT_RPC_URL: chain.url, CHIT_PASSWORD: PASSWORD },
    env,
  );
  for (const [key, value] of Object.entries(all)) if (value === undefined) delete all[key];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
      cwd: PACKAGE,
      env: all as NodeJS.ProcessEnv,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
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
    child.stdin.end(input);
  });
}

/** Asserts a run succeeded and returns its JSON output (or its text). */
// biome-ignore lint/suspicious/noExplicitAny: the CLI's JSON output, checked field by field.
function ok(run: Run): any {
  assert.equal(run.code, 0, `expected success, got ${run.code}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
  return run.stdout.trimStart().startsWith('{') ? JSON.parse(run.stdout) : run.stdout;
}

/** Asserts a `--json` run failed with exit code 1, nothing on stdout, and returns its error. */
function failedJson(run: Run): { code: string; message: string; hint: string; details?: string } {
  assert.equal(run.code, 1, `expected failure, got ${run.code}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
  assert.equal(run.stdout, '');
  return JSON.parse(run.stderr.slice(run.stderr.indexOf('{'))).error;
}

const tokenBalance = (owner: Address) =>
  chain.publicClient.readContract({
    address: chain.token,
    abi: chitTokenAbi,
    functionName: 'balanceOf',
    args: [owner],
  });
const settledOnChain = async (provider: Address) =>
  (await getProviderChannel(chain.publicClient, { hub: chain.hub, provider })).settled;
const hubFee = (amount: bigint) => (amount * BigInt(FIRST_HUB.fee)) / 10_000n;

/** Polls `probe` every 100 ms until it gives a truthy value, for 30 s at most. */
async function until<T>(what: string, probe: () => Promise<T | undefined | false>): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

interface Provider {
  key: Hex;
  address: Address;
  beneficiary: Address;
  store: string;
  /** CHIT_KEYSTORE and CHIT_STORE of its own. */
  env: Record<string, string>;
  ledger: ProviderLedger;
  agreement: Hex;
  agreementTotal: bigint;
}

/** A provider with gas, a keystore, a registered beneficiary of its own, and a ledger on a FileStore. */
async function newProvider(name: string): Promise<Provider> {
  const key = generatePrivateKey();
  const account = privateKeyToAccount(key);
  const keystore = path.join(home, 'keys', `${name}.json`);
  const store = path.join(home, 'stores', name);
  const env = { CHIT_KEYSTORE: keystore, CHIT_STORE: store };
  const imported = await chit(['identity', 'import', '--light-kdf'], env, `${key}\n`);
  ok(imported);
  await chain.testClient.setBalance({ address: account.address, value: parseEther('1') });
  const beneficiary = privateKeyToAccount(generatePrivateKey()).address;
  const { hash } = await registerIdentity(chain.wallet(account), { registry: chain.registry, beneficiary });
  await waitForTransaction(chain.publicClient, { hash });
  const ledger = new ProviderLedger({
    hub: new HubClient({ url: hub.url }),
    account,
    store: new FileStore(store),
    expect: { hub: chain.hub, chainId: chain.chain.id, operator },
  });
  return {
    key,
    address: account.address,
    beneficiary,
    store,
    env,
    ledger,
    agreement: newAgreementId(),
    agreementTotal: 0n,
  };
}

/** The consumer pays `provider` `amount` more, and the provider exchanges it at the hub (its ledger stores it). */
async function earn(provider: Provider, amount: bigint): Promise<SignedHubPromise> {
  const { preimage, hashlock } = newHashlock();
  provider.agreementTotal += amount;
  consumerTotal += amount;
  const promise = await signConsumerPromise(consumer, {
    hub: chain.hub,
    chainId: chain.chain.id,
    consumer: consumer.address,
    total: consumerTotal,
    hashlock,
    agreement: { provider: provider.address, id: provider.agreement, total: provider.agreementTotal },
  });
  return provider.ledger.exchange(promise, preimage);
}

/** The ledger document's key in a provider's store. */
const ledgerKey = (provider: Provider) =>
  `chit/provider/${chain.chain.id}/${chain.hub.toLowerCase()}/${provider.address.toLowerCase()}`;

/** The hub promise total the provider's store holds (as the ledger wrote it). */
async function storedTotal(store: string, provider: Provider): Promise<bigint> {
  const document = (await new FileStore(store).get(ledgerKey(provider))) as { latest: { total: string } };
  return BigInt(document.latest.total);
}

describe('chit without the hub', () => {
  let alice: Provider;
  let bob: Provider;
  let carol: Provider;
  let dave: Provider;
  let erin: Provider;

  before(async () => {
    home = mkdtempSync(path.join(tmpdir(), 'chit-hub-gone-'));
    chain = await startChain();
    operator = (await getHubInfo(chain.publicClient, { hub: chain.hub })).operator;
    hub = await startHubProcess({ chain });

    // The consumer's deposit, once the hub's books show it.
    await chain.testClient.setBalance({ address: consumer.address, value: parseEther('1') });
    await chain.mint(consumer.address, parseEther('100'));
    const { hash } = await deposit(chain.wallet(consumer), { hub: chain.hub, amount: parseEther('100') });
    await waitForTransaction(chain.publicClient, { hash });
    const client = new HubClient({ url: hub.url });
    await until('the hub to see the deposit', async () => (await client.consumer(consumer.address)).balance > 0n);

    alice = await newProvider('alice');
    bob = await newProvider('bob');
    carol = await newProvider('carol');
    dave = await newProvider('dave');
    erin = await newProvider('erin');
    await earn(alice, parseEther('3'));
    await earn(alice, parseEther('4.123456789012345678'));
    await earn(bob, parseEther('5'));
    await earn(carol, parseEther('6'));
    await earn(erin, parseEther('1'));
  });

  after(async () => {
    await hub?.cleanup();
    await chain?.stop();
    if (home) rmSync(home, { recursive: true, force: true });
  });

  describe('store export and import, while the hub runs', () => {
    it('export writes the hub promises and R to a file of mode 0600; a ledger continues from the imported store', async () => {
      const file = path.join(home, 'carol.backup.json');
      // An agreement whose total the ledger keeps in its checkpoint (it has not changed lately): the
      // backup carries it in the document.
      const older = `0x${'0e'.repeat(32)}` as const;
      await new FileStore(carol.store).put(`${ledgerKey(carol)}/credited`, {
        version: 1,
        credited: { [older]: '123' },
      });
      const exported = ok(await chit(['store', 'export', file, '--json'], carol.env));
      assert.equal(statSync(file).mode & 0o777, 0o600);
      const { hubPromise, preimage } = await carol.ledger.latest();
      assert.deepEqual(exported.ledgers, [
        {
          key: ledgerKey(carol),
          hub: chain.hub,
          chainId: chain.chain.id,
          provider: carol.address,
          totalBaseUnits: parseEther('6').toString(),
          hasPreimage: true,
        },
      ]);
      const backup = JSON.parse(readFileSync(file, 'utf8'));
      assert.equal(backup.format, 'chit-provider-store-backup');
      assert.deepEqual(backup.ledgers[0].document.latest, encodeMessage(hubPromise!));
      assert.equal(backup.ledgers[0].document.latestPreimage, preimage);
      assert.equal(backup.ledgers[0].document.credited[older], '123');

      // The store lost, then restored: a new ledger on it holds the same promise and R, and goes on.
      rmSync(carol.store, { recursive: true });
      const imported = ok(await chit(['store', 'import', file, '--json'], carol.env));
      assert.deepEqual([imported.added, imported.updated, imported.kept], [1, 0, 0]);
      carol.ledger = new ProviderLedger({
        hub: new HubClient({ url: hub.url }),
        account: privateKeyToAccount(carol.key),
        store: new FileStore(carol.store),
        expect: { hub: chain.hub, chainId: chain.chain.id, operator },
        recoverOnEmptyStore: false,
      });
      assert.deepEqual(await carol.ledger.latest(), { hubPromise, preimage });
      assert.equal(await carol.ledger.credited(older), 123n);
      const next = await earn(carol, parseEther('1'));
      assert.equal(next.total, parseEther('7'));
    });

    it('import never lowers a newer total, replaces an older one, and changes nothing the second time', async () => {
      await earn(dave, parseEther('2'));
      const older = path.join(home, 'dave.older.json');
      ok(await chit(['store', 'export', older], dave.env));
      await earn(dave, parseEther('3'));
      const newer = path.join(home, 'dave.newer.json');
      ok(await chit(['store', 'export', newer], dave.env));

      // The store holds 5; the backup of 2 is kept out.
      const kept = ok(await chit(['store', 'import', older, '--json'], dave.env));
      assert.deepEqual([kept.added, kept.updated, kept.kept], [0, 0, 1]);
      assert.equal(kept.ledgers[0].storeTotalBaseUnits, parseEther('5').toString());
      assert.equal(await storedTotal(dave.store, dave), parseEther('5'));

      // Another store at 2 takes the backup of 5, once.
      const other = path.join(home, 'stores', 'dave-elsewhere');
      const env = { ...dave.env, CHIT_STORE: other };
      ok(await chit(['store', 'import', older], env));
      const updated = ok(await chit(['store', 'import', newer, '--json'], env));
      assert.deepEqual([updated.added, updated.updated, updated.kept], [0, 1, 0]);
      assert.equal(await storedTotal(other, dave), parseEther('5'));
      const file = readdirText(other);
      const again = ok(await chit(['store', 'import', newer], env));
      assert.match(again, /0 added, 0 updated, 1 kept/);
      assert.equal(readdirText(other), file);
    });

    describe('when the file is not a backup', () => {
      const refused = async (name: string, content: string, message: RegExp) => {
        const file = path.join(home, name);
        writeFileSync(file, content);
        const before = readdirText(dave.store);
        const error = failedJson(await chit(['store', 'import', file, '--json'], dave.env));
        assert.equal(error.code, 'INVALID_BACKUP');
        assert.match(error.message, new RegExp(`^${file} is not a chit store backup: `));
        assert.match(error.message, message);
        assert.match(error.hint, /^Nothing was imported/);
        assert.equal(readdirText(dave.store), before, 'the store changed');
      };
      const original = () => path.join(home, 'dave.backup.json');
      const backup = () => JSON.parse(readFileSync(original(), 'utf8'));

      before(async () => {
        ok(await chit(['store', 'export', original()], dave.env));
      });

      it('import refuses text that is not JSON', async () => {
        await refused('not-json.txt', 'hello', /: it is not JSON$/);
      });

      it('import refuses JSON of another kind, naming the field', async () => {
        await refused('config.json', JSON.stringify({ rpcUrl: chain.url }), /: format: .*chit-provider-store-backup/);
        const extra = { ...backup(), note: 'mine' };
        await refused('extra-field.json', JSON.stringify(extra), /: note: /);
      });

      it('import refuses an R that does not open the hub promise’s hashlock', async () => {
        const tampered = backup();
        tampered.ledgers[0].document.latestPreimage = newHashlock().preimage;
        await refused(
          'wrong-r.json',
          JSON.stringify(tampered),
          /: ledgers\.0\.document\.latestPreimage: it does not open the hashlock of the hub promise$/,
        );
      });

      it('import refuses a ledger filed under another provider’s key', async () => {
        const misfiled = backup();
        misfiled.ledgers[0].key = ledgerKey(erin);
        await refused(
          'misfiled.json',
          JSON.stringify(misfiled),
          /: ledgers\.0\.key: it names another chain, hub or provider/,
        );
      });

      it('import refuses a higher total signed by another key than the stored promise', async () => {
        const forged = backup();
        const { hashlock, preimage } = newHashlock();
        const promise = await signHubPromise(privateKeyToAccount(generatePrivateKey()), {
          hub: chain.hub,
          chainId: chain.chain.id,
          provider: dave.address,
          total: parseEther('500'),
          hashlock,
        });
        forged.ledgers[0].document.latest = encodeMessage(promise);
        forged.ledgers[0].document.latestPreimage = preimage;
        await refused('forged.json', JSON.stringify(forged), /: ledgers\.0\.document\.latest\.signature: it is by 0x/);
      });
    });
  });

  describe('when the hub is gone', () => {
    before(async () => {
      await hub.stop();
      assert.equal(hub.running, false);
    });

    it('settle with no hub URL pays the beneficiary the hub promise total less the hub fee, to the wei', async () => {
      const { hubPromise } = await alice.ledger.latest();
      const total = hubPromise!.total;
      assert.equal(total, parseEther('7.123456789012345678'));
      const before = await tokenBalance(alice.beneficiary);
      const run = await chit(['settle', '--yes', '--json'], alice.env);
      const settled = ok(run);
      assert.match(
        run.stderr,
        new RegExp(`^no hub URL is set: using the latest hub promise in the store ${alice.store}$`, 'm'),
      );
      assert.equal(await tokenBalance(alice.beneficiary), before + total - hubFee(total));
      assert.equal(await settledOnChain(alice.address), total);
      assert.deepEqual(
        {
          source: settled.source,
          beneficiary: settled.beneficiary,
          total: settled.total,
          owed: settled.owed,
          hubFee: settled.hubFee,
          payout: settled.payout,
        },
        {
          source: 'store',
          beneficiary: alice.beneficiary,
          total: '7.123456789012345678',
          owed: '7.123456789012345678',
          hubFee: '0.071234567890123456',
          payout: '7.052222221122222222',
        },
      );

      const again = ok(await chit(['settle', '--yes'], alice.env));
      assert.match(again, /Nothing to settle: the latest hub promise \(7\.123456789012345678 tCHIT\) is settled/);
    });

    it('settle with a hub URL that no longer answers falls back to the store and says so', async () => {
      const total = parseEther('5');
      const before = await tokenBalance(bob.beneficiary);
      const run = await chit(['settle', '--yes'], { ...bob.env, CHIT_HUB_URL: hub.url });
      const text = ok(run);
      assert.match(
        run.stderr,
        new RegExp(
          `^warning: the hub at ${hub.url} does not answer \\(ECONNREFUSED\\): using the latest hub promise in the store ${bob.store}$`,
          'm',
        ),
      );
      assert.match(text, /^To settle: +5 tCHIT$/m);
      assert.match(text, /^Hub fee: +0\.05 tCHIT \(1\.00%\)$/m);
      assert.match(
        text,
        new RegExp(
          `^Settled: 4\\.95 tCHIT paid to ${bob.beneficiary} \\(5 tCHIT settled, less the hub fee of 0\\.05 tCHIT\\)\\.$`,
          'm',
        ),
      );
      assert.equal(await tokenBalance(bob.beneficiary), before + total - hubFee(total));
      assert.equal(await settledOnChain(bob.address), total);
    });

    it('settle after export, a lost store and import pays all the store held', async () => {
      const file = path.join(home, 'carol.after.json');
      ok(await chit(['store', 'export', file], carol.env));
      rmSync(carol.store, { recursive: true });

      const lost = failedJson(await chit(['settle', '--yes', '--json'], carol.env));
      assert.equal(lost.code, 'STORE_NO_PROMISE');
      assert.match(lost.message, /^No hub URL is set, and the store .* holds no hub promise to 0x/);
      assert.match(lost.hint, /chit store import <file>/);
      assert.equal(await settledOnChain(carol.address), 0n);

      ok(await chit(['store', 'import', file], carol.env));
      const total = parseEther('7');
      const before = await tokenBalance(carol.beneficiary);
      const settled = ok(await chit(['settle', '--yes', '--json'], carol.env));
      assert.deepEqual([settled.owed, settled.hubFee, settled.payout], ['7', '0.07', '6.93']);
      assert.equal(await tokenBalance(carol.beneficiary), before + total - hubFee(total));
      assert.equal(await settledOnChain(carol.address), total);
    });

    it('withdraw with no hub URL pays from the store too', async () => {
      const total = parseEther('5');
      const before = await tokenBalance(dave.beneficiary);
      const withdrawn = ok(await chit(['withdraw', '--yes', '--json'], dave.env));
      assert.deepEqual([withdrawn.source, withdrawn.owed, withdrawn.payout], ['store', '5', '4.95']);
      assert.equal(await tokenBalance(dave.beneficiary), before + total - hubFee(total));
    });

    describe('when the stored promise was tampered with', () => {
      it('settle refuses a total the operator did not sign, and sends nothing', async () => {
        const store = new FileStore(erin.store);
        const original = await store.get(ledgerKey(erin));
        const document = structuredClone(original) as { latest: { total: string } };
        document.latest.total = parseEther('90').toString();
        await store.put(ledgerKey(erin), document);
        const nonce = await chain.publicClient.getTransactionCount({ address: erin.address });
        const error = failedJson(await chit(['settle', '--yes', '--json'], erin.env));
        assert.equal(error.code, 'BAD_STORED_PROMISE');
        assert.equal(
          error.message,
          `The hub promise in the store ${erin.store} cannot be settled: it is not signed by the hub's operator ${operator}`,
        );
        assert.equal(await chain.publicClient.getTransactionCount({ address: erin.address }), nonce);
        await store.put(ledgerKey(erin), original!);
      });

      it('settle refuses an R that does not open the hashlock, and sends nothing', async () => {
        const store = new FileStore(erin.store);
        const original = await store.get(ledgerKey(erin));
        await store.put(ledgerKey(erin), { ...(original as object), latestPreimage: newHashlock().preimage });
        const nonce = await chain.publicClient.getTransactionCount({ address: erin.address });
        const error = failedJson(await chit(['settle', '--yes', '--json'], erin.env));
        assert.equal(error.code, 'STORE_DAMAGED');
        assert.match(error.message, /latestPreimage: it does not open the hashlock of the hub promise$/);
        assert.equal(await chain.publicClient.getTransactionCount({ address: erin.address }), nonce);
        await store.put(ledgerKey(erin), original!);
      });
    });

    it('settle --relayer needs the hub, and says to settle directly', async () => {
      const error = failedJson(await chit(['settle', '--relayer', '--yes', '--json'], erin.env));
      assert.equal(error.code, 'HUB_URL_MISSING');
      assert.match(error.message, /settling through the hub's relayer needs the hub's service/);
    });
  });
});

/** Every file of a directory with its content, to compare a store before and after. */
function readdirText(directory: string): string {
  return readdirSync(directory)
    .sort()
    .map((name) => `${name}\n${readFileSync(path.join(directory, name), 'utf8')}`)
    .join('\n');
}
