import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  encodeMessage,
  HubClient,
  newHashlock,
  sealPreimage,
  signConsumerPromise,
  signSettlementAuthorization,
} from '@chit/sdk';
import { encryptKeystoreJson } from 'ethers';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { bytesToHex, type Hex } from 'viem';
import { generatePrivateKey, type PrivateKeyAccount, privateKeyToAccount } from 'viem/accounts';
import { DASHBOARD_CSP } from '../src/dashboard/dashboard.controller';
import { toBytea } from '../src/db/bytes';
import { CHROMIUM, CHROMIUM_ARGS } from './support/chromium';
import { startTestStack, type TestStack } from './support/hub';

// biome-ignore lint/suspicious/noExplicitAny: JSON answers
type Json = any;

const DIST = path.resolve(__dirname, '..', '..', 'dashboard', 'dist');
const ARTIFACTS = path.resolve(__dirname, '..', '..', 'test-artifacts', 'dashboard');
const DAY = 86_400_000;
/** Whole tokens: enough for a settlement to pay its relayer. */
const UNIT = 10n ** 18n;
const units = (tokens: bigint) => (tokens * UNIT).toString();
/** How long a state of the page may take to show on a loaded CI machine. */
const SHOWN = 20_000;

describe('dashboard: the page the hub serves at /dashboard, in Chromium', () => {
  let stack: TestStack;
  let client: HubClient;
  let info: { hub: Hex; chainId: number; publicKey: Hex; fee: number; stake: string; freeFunds: string };
  let userDataDir: string;
  let browser: BrowserContext;
  const operator = () => privateKeyToAccount(stack.chain.operatorKey as Hex);

  // The parties: a provider paid by two consumers, and another provider paid by the first consumer.
  const provider = { key: generatePrivateKey(), previous: undefined as Hex | undefined };
  const other = { key: generatePrivateKey(), previous: undefined as Hex | undefined };
  const consumers = [
    { key: generatePrivateKey(), signed: 0n },
    { key: generatePrivateKey(), signed: 0n },
  ];
  const account = (party: { key: Hex }) => privateKeyToAccount(party.key);
  let latest: { total: bigint; hashlock: Hex } | undefined;

  before(async function () {
    this.timeout(180_000);
    if (!existsSync(path.join(DIST, 'index.html'))) {
      throw new Error(`${DIST} is missing: run \`npm run build -w dashboard\` first (npm run test:hub does)`);
    }
    // Settlements run their course in seconds, as in settlement.test.ts.
    stack = await startTestStack('dashboard', {
      CONFIRMATIONS: '0',
      FOLLOWER_POLL_MS: '100',
      SETTLEMENT_BATCH_WINDOW_MS: '300',
      SETTLEMENT_RECONCILE_INTERVAL_MS: '500',
      SETTLEMENT_BACKOFF_MS: '200',
      TX_POLL_INTERVAL_MS: '100',
    });
    client = new HubClient({ url: stack.hub.url });
    info = (await (await fetch(`${stack.hub.url}/v1/info`)).json()) as typeof info;
    for (const consumer of consumers) {
      await stack.db.pool.query('INSERT INTO consumers (address, balance) VALUES ($1, $2)', [
        toBytea(account(consumer).address.toLowerCase()),
        (1_000n * UNIT).toString(),
      ]);
    }
    for (const [seller, payer, increments] of [
      [provider, consumers[0]!, [10n * UNIT, 25n * UNIT, 5n * UNIT]],
      [provider, consumers[1]!, [7n * UNIT]],
      [other, consumers[0]!, [100n * UNIT]],
    ] as const) {
      const agreement = { id: bytesToHex(randomBytes(32)), total: 0n };
      for (const increment of increments) {
        const answer = await exchange(seller, payer, agreement, increment);
        if (seller === provider)
          latest = { total: BigInt(answer.hubPromise.total), hashlock: answer.hubPromise.hashlock };
      }
    }
    mkdirSync(ARTIFACTS, { recursive: true });
    if (!existsSync(CHROMIUM)) {
      if (process.env.CI) throw new Error(`${CHROMIUM} is missing: apt-get install chromium`);
      this.skip();
    }
    userDataDir = mkdtempSync(path.join(tmpdir(), 'chit-dashboard-'));
    browser = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 900 },
      acceptDownloads: true,
    });
  });
  after(async () => {
    await browser?.close();
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
    await stack?.stop();
  });

  /** One exchange of `increment` on the agreement, as history.test.ts makes them. */
  async function exchange(
    seller: typeof provider,
    payer: (typeof consumers)[number],
    agreement: { id: Hex; total: bigint },
    increment: bigint,
  ): Promise<Json> {
    const { preimage, hashlock } = newHashlock();
    const total = payer.signed + increment;
    const promise = await signConsumerPromise(account(payer), {
      hub: info.hub,
      chainId: info.chainId,
      consumer: account(payer).address,
      total,
      hashlock,
      agreement: { provider: account(seller).address, id: agreement.id, total: agreement.total + increment },
    });
    const body = encodeMessage({
      promise,
      encryptedPreimage: sealPreimage(info.publicKey, preimage),
      ...(seller.previous && { previousPreimage: seller.previous }),
    });
    const response = await fetch(`${stack.hub.url}/v1/exchange`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const answer = (await response.json()) as Json;
    assert.equal(response.status, 200, JSON.stringify(answer));
    payer.signed = total;
    agreement.total += increment;
    seller.previous = preimage;
    return answer;
  }

  // The page's default range: the last 7 UTC days, today included.
  const today = Math.floor(Date.now() / DAY) * DAY;
  const range = { from: new Date(today - 6 * DAY), to: new Date(today + DAY) };

  const signIn = (who: PrivateKeyAccount) => client.history.signIn(who, { chainId: info.chainId });

  /** A page of the dashboard, recording what it logs as errors. */
  async function open(options: { poll?: number; viewport?: { width: number; height: number } } = {}) {
    const page = await browser.newPage();
    if (options.viewport) await page.setViewportSize(options.viewport);
    const errors: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(`${stack.hub.url}/dashboard${options.poll ? `?poll=${options.poll}` : ''}`);
    await page.locator('#key-form').waitFor({ timeout: SHOWN });
    return { page, errors };
  }

  /** Signs in with a key file (the file's text), then waits for the first page to load. */
  async function signInWithFile(page: Page, text: string, password?: string) {
    await page.setInputFiles('#key-file', { name: 'identity.key', mimeType: 'text/plain', buffer: Buffer.from(text) });
    if (password !== undefined) await page.fill('#key-password', password);
    await page.click('#key-sign-in');
    await page.locator('#app').waitFor({ state: 'visible', timeout: 60_000 });
  }

  async function loaded(page: Page, what: string) {
    try {
      await page.locator(`body[data-loaded="${what}"]`).waitFor({ state: 'attached', timeout: SHOWN });
    } catch (error) {
      throw new Error(`${what} not shown: "${await page.locator('#load-status').textContent()}"`, { cause: error });
    }
  }
  const shown = async (page: Page, id: string) => page.locator(`#${id}`).getAttribute('data-value');
  const textOf = async (page: Page, id: string) => (await page.locator(`#${id}`).textContent())?.trim();
  const screenshot = (page: Page, name: string) =>
    page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
  async function noOverflow(page: Page) {
    // Evaluated in the page (the hub's tests have no DOM types).
    const widths = (await page.evaluate(
      '({ document: document.documentElement.scrollWidth, viewport: window.innerWidth })',
    )) as { document: number; viewport: number };
    assert.ok(widths.document <= widths.viewport, `the page is ${widths.document} px wide in ${widths.viewport} px`);
  }

  it('serves the page and its assets with their types and a strict CSP, nothing else, and a redirect from /dashboard', async () => {
    const url = stack.hub.url;
    const bare = await fetch(`${url}/dashboard`, { redirect: 'manual' });
    assert.equal(bare.status, 302);
    assert.equal(bare.headers.get('location'), 'dashboard/');
    const kept = await fetch(`${url}/dashboard?poll=2000`, { redirect: 'manual' });
    assert.equal(kept.headers.get('location'), 'dashboard/?poll=2000');
    for (const [file, type] of [
      ['', 'text/html; charset=utf-8'],
      ['app.js', 'text/javascript; charset=utf-8'],
      ['app.css', 'text/css; charset=utf-8'],
    ] as const) {
      const response = await fetch(`${url}/dashboard/${file}`);
      assert.equal(response.status, 200, file);
      assert.equal(response.headers.get('content-type'), type);
      assert.equal(response.headers.get('content-security-policy'), DASHBOARD_CSP);
      assert.match(DASHBOARD_CSP, /script-src 'self'/);
      assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
      assert.equal(await response.text(), readFileSync(path.join(DIST, file || 'index.html'), 'utf8'));
    }
    for (const tricky of [
      '..%2Fpackage.json',
      '..%2F..%2Fpackage.json',
      '%2E%2E',
      'build.mjs',
      'index.htm',
      '.tsbuildinfo',
    ]) {
      const response = await fetch(`${url}/dashboard/${tricky}`);
      assert.equal(response.status, 404, tricky);
      assert.equal(((await response.json()) as Json).code, 'NOT_FOUND');
    }
    assert.equal((await fetch(`${url}/dashboard/../package.json`)).status, 404);
  });

  it('says how to build it when the build is missing', async () => {
    const empty = mkdtempSync(path.join(tmpdir(), 'chit-dashboard-empty-'));
    process.env.CHIT_DASHBOARD_DIR = empty;
    try {
      const response = await fetch(`${stack.hub.url}/dashboard/`);
      assert.equal(response.status, 503);
      assert.match(await response.text(), /npm run build -w dashboard/);
    } finally {
      delete process.env.CHIT_DASHBOARD_DIR;
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it("shows a provider's earnings, books, next settlement, consumers and settlements as the hub's books have them, per day and per hour, and downloads them as CSV", async function () {
    this.timeout(180_000);
    const seller = account(provider);
    // One settlement, requested as a provider would: the dashboard shows where it stands.
    const quote = (await (
      await fetch(`${stack.hub.url}/v1/quotes/settlement?provider=${seller.address}`)
    ).json()) as Json;
    const authorization = await signSettlementAuthorization(
      seller,
      {
        hub: info.hub,
        chainId: info.chainId,
        provider: seller.address,
        total: latest!.total,
        hashlock: latest!.hashlock,
      },
      BigInt(quote.relayerFee),
      quote.relayer,
    );
    const requested = await fetch(`${stack.hub.url}/v1/settlements`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ provider: seller.address, relayerFee: quote.relayerFee, authorization }),
    });
    assert.equal(requested.status, 202, await requested.clone().text());
    const job = (await requested.json()) as Json;

    const { page, errors } = await open({ poll: 1_000 });
    await screenshot(page, 'sign-in');
    await signInWithFile(page, provider.key);
    await loaded(page, 'provider/day');
    const session = await signIn(seller);
    const history = await client.history.provider(seller.address, { ...range, bucket: 'day' }, session);
    const books = (await (await fetch(`${stack.hub.url}/v1/providers/${seller.address}`)).json()) as Json;
    const exchanged = await stack.db.pool.query(
      'SELECT sum(increment)::text AS amount, count(*)::int AS n FROM exchanges WHERE provider = $1',
      [toBytea(seller.address.toLowerCase())],
    );
    assert.equal(exchanged.rows[0].amount, units(47n));
    assert.equal(await shown(page, 'p-earned'), units(47n));
    assert.equal(await textOf(page, 'p-earned'), '47');
    assert.equal(await shown(page, 'p-earned'), history.total.amount.toString());
    assert.equal(await shown(page, 'p-exchanges'), String(exchanged.rows[0].n));
    assert.equal(await shown(page, 'p-hub-fee'), ((47n * UNIT * BigInt(info.fee)) / 10_000n).toString());
    assert.equal(await shown(page, 'p-fee'), String(info.fee));
    assert.equal(await shown(page, 'p-promised'), books.earned);
    assert.equal(await shown(page, 'p-settled'), books.settled);
    assert.equal(await shown(page, 'p-unsettled'), books.unsettled);
    assert.deepEqual(
      [await shown(page, 'p-promised'), await shown(page, 'p-settled'), await shown(page, 'p-unsettled')],
      [history.books.promised, history.books.settled, history.books.unsettled].map(String),
    );
    const next = (await (
      await fetch(`${stack.hub.url}/v1/quotes/settlement?provider=${seller.address}`)
    ).json()) as Json;
    assert.equal(await shown(page, 'p-next-amount'), next.amount);
    assert.equal(await shown(page, 'p-next-hub-fee'), next.hubFee);
    const rows = await page
      .locator('#p-consumers tbody tr')
      .evaluateAll((trs) =>
        trs.map((tr) => [
          tr.children[0]?.getAttribute('data-address'),
          tr.children[1]?.getAttribute('data-value'),
          tr.children[2]?.textContent,
        ]),
      );
    assert.deepEqual(rows, [
      [account(consumers[0]!).address, units(40n), '3'],
      [account(consumers[1]!).address, units(7n), '1'],
    ]);
    assert.match((await textOf(page, 'p-chart-summary')) ?? '', /^Earnings per day, 7 days: /);
    assert.equal(await page.locator('#p-chart canvas').count(), 1);

    // The settlement's row says what the hub's API says of it once it has run its course (the page polls).
    let answered: Awaited<ReturnType<HubClient['history']['providerSettlements']>>['settlements'] = [];
    for (const deadline = Date.now() + 90_000; ; ) {
      answered = (await client.history.providerSettlements(seller.address, range, session)).settlements;
      if (answered.length === 1 && ['confirmed', 'failed'].includes(answered[0]!.status)) break;
      assert.ok(
        Date.now() < deadline,
        `the settlement ${job.id} is still ${JSON.stringify(answered, (_, v) => (typeof v === 'bigint' ? v.toString() : v))}`,
      );
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    const settlementRow = page.locator('#p-settlements tbody tr');
    await settlementRow.first().locator(`[data-status="${answered[0]!.status}"]`).waitFor({ timeout: SHOWN });
    const settlement = answered[0]!;
    assert.equal(settlement.id, job.id);
    const cells = await settlementRow.first().locator('td').allTextContents();
    assert.equal(cells[1]?.trim(), [settlement.status, settlement.error?.code].filter(Boolean).join(' '));
    assert.equal(
      await settlementRow.first().locator('td').nth(2).getAttribute('data-value'),
      settlement.total.toString(),
    );
    await screenshot(page, 'provider');

    // Per hour: the same total, 168 buckets.
    await page.selectOption('#range-bucket', 'hour');
    await loaded(page, 'provider/hour');
    assert.match((await textOf(page, 'p-chart-summary')) ?? '', /^Earnings per hour, 168 hours: /);
    assert.equal(await shown(page, 'p-earned'), units(47n));

    const [earnings] = await Promise.all([page.waitForEvent('download'), page.click('#p-csv-earnings')]);
    assert.equal(
      earnings.suggestedFilename(),
      `chit-earnings-${seller.address}-${range.from.toISOString().slice(0, 10)}-${range.to.toISOString().slice(0, 10)}.csv`,
    );
    const csv = readFileSync((await earnings.path())!, 'utf8');
    assert.equal(csv, await client.history.csv('earnings', seller.address, { ...range, bucket: 'hour' }, session));
    const lines = csv.trimEnd().split('\r\n');
    assert.equal(lines[0], 'start,amount,hubFee,exchanges');
    assert.equal(lines.length, 1 + 168);
    assert.equal(
      lines.slice(1).reduce((total, line) => total + BigInt(line.split(',')[1]!), 0n),
      47n * UNIT,
    );
    const [settlements] = await Promise.all([page.waitForEvent('download'), page.click('#p-csv-settlements')]);
    const settlementsCsv = readFileSync((await settlements.path())!, 'utf8')
      .trimEnd()
      .split('\r\n');
    assert.equal(
      settlementsCsv[0],
      'id,status,total,amount,hubFee,relayerFee,payout,txHash,gasUsed,errorCode,error,createdAt,updatedAt',
    );
    assert.equal(settlementsCsv.length, 2);
    assert.ok(settlementsCsv[1]!.startsWith(`${job.id},`));
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("shows a consumer's spending and what it paid each provider, signed in with an encrypted keystore", async function () {
    this.timeout(120_000);
    const payer = account(consumers[0]!);
    const password = 'correct horse battery staple';
    // The CLI's keystore format (Web3 Secret Storage v3, scrypt), with geth's light parameters to be quick.
    const keystore = await encryptKeystoreJson({ address: payer.address, privateKey: consumers[0]!.key }, password, {
      scrypt: { N: 1 << 12, r: 8, p: 6 },
    });
    const { page, errors } = await open();
    await page.setInputFiles('#key-file', {
      name: 'keystore.json',
      mimeType: 'application/json',
      buffer: Buffer.from(keystore),
    });
    await page.fill('#key-password', 'wrong password');
    await page.click('#key-sign-in');
    await page.locator('#signin-status', { hasText: 'The password does not open this keystore' }).waitFor({
      timeout: 60_000,
    });
    await signInWithFile(page, keystore, password);
    await loaded(page, 'provider/day');
    assert.equal(await page.locator('#who-address').textContent(), payer.address);
    await page.click('.tab[data-page="consumer"]');
    await loaded(page, 'consumer/day');
    const session = await signIn(payer);
    const spending = await client.history.consumer(payer.address, range, session);
    assert.equal(spending.total.amount, 140n * UNIT);
    assert.equal(await shown(page, 'c-spent'), units(140n));
    assert.equal(await textOf(page, 'c-spent'), '140');
    assert.equal(await shown(page, 'c-exchanges'), String(spending.total.exchanges));
    const rows = await page
      .locator('#c-providers tbody tr')
      .evaluateAll((trs) =>
        trs.map((tr) => [tr.children[0]?.getAttribute('data-address'), tr.children[1]?.getAttribute('data-value')]),
      );
    assert.deepEqual(rows, [
      [account(other).address, units(100n)],
      [account(provider).address, units(40n)],
    ]);
    assert.equal(await page.locator('.tab[data-page="operator"]').isHidden(), true);
    await screenshot(page, 'consumer');
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("shows the operator the hub's stake, free funds, liabilities, live figures and warnings, updated as they change", async function () {
    this.timeout(120_000);
    // An error answer for the error table.
    assert.equal((await fetch(`${stack.hub.url}/v1/nothing-here`)).status, 404);
    const { page, errors } = await open({ poll: 1_000 });
    // A plain key file without 0x.
    await signInWithFile(page, `${stack.chain.operatorKey.replace(/^0x/, '')}\n`);
    await loaded(page, 'operator/day');
    assert.equal(await page.locator('#who-operator').isVisible(), true);
    const now = (await (await fetch(`${stack.hub.url}/v1/info`)).json()) as Json;
    assert.equal(await shown(page, 'o-stake'), now.stake);
    assert.equal(await shown(page, 'o-free-funds'), now.freeFunds);
    assert.equal(await shown(page, 'o-status'), now.status);
    assert.equal(await shown(page, 'o-fee'), String(now.fee));
    const owed = await stack.db.pool.query(
      'SELECT coalesce(sum(greatest(promised - settled, 0)), 0)::text AS owed FROM providers',
    );
    assert.equal(await shown(page, 'o-liabilities'), owed.rows[0].owed);
    const history = await client.history.hub(range, await signIn(operator()));
    assert.equal(await shown(page, 'o-exchanges'), String(history.total.exchanges));
    assert.equal(await shown(page, 'o-volume'), history.total.amount.toString());
    assert.equal(history.total.amount, 147n * UNIT);
    // The relayer (the operator's account on anvil) has plenty of gas.
    assert.ok(Number(await shown(page, 'o-gas')) > 1e18);
    // Two scrapes a second apart make a rate.
    await page.locator('#o-rate[data-value]').waitFor({ state: 'attached', timeout: SHOWN });
    assert.ok(Number(await shown(page, 'o-rate')) >= 0);
    await page.locator('#o-errors td', { hasText: 'NOT_FOUND' }).waitFor({ timeout: SHOWN });
    const warnings = await page.locator('#o-warnings li').allTextContents();
    const liabilities = BigInt(owed.rows[0].owed);
    assert.equal(
      warnings.some((text) => text.includes('exceed the free funds')),
      liabilities > BigInt(now.freeFunds),
      warnings.join('\n'),
    );

    // A new exchange shows within a poll.
    await exchange(other, consumers[1]!, { id: bytesToHex(randomBytes(32)), total: 0n }, 3n * UNIT);
    await page.locator(`#o-volume[data-value="${units(150n)}"]`).waitFor({ state: 'attached', timeout: SHOWN });
    await page.locator(`#o-liabilities[data-value="${liabilities + 3n * UNIT}"]`).waitFor({
      state: 'attached',
      timeout: SHOWN,
    });
    await screenshot(page, 'operator');
    assert.deepEqual(errors, []);
    await page.close();
  });

  it('signs in with a browser wallet (window.ethereum: eth_requestAccounts, then personal_sign of the SIWE message)', async () => {
    const payer = account(consumers[1]!);
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    page.on('pageerror', (error) => errors.push(error.message));
    // A wallet as an extension injects it; it signs in this test's process, as a wallet signs in its own.
    const asked: string[] = [];
    await page.exposeFunction('walletSign', async (hex: Hex, address: string) => {
      assert.equal(address, payer.address);
      const message = Buffer.from(hex.slice(2), 'hex').toString('utf8');
      asked.push(message);
      return payer.signMessage({ message });
    });
    await page.addInitScript(`window.ethereum = {
      async request({ method, params }) {
        if (method === 'eth_requestAccounts') return ['${payer.address.toLowerCase()}'];
        if (method === 'personal_sign') return window.walletSign(params[0], params[1]);
        throw new Error('unsupported ' + method);
      },
    };`);
    await page.goto(`${stack.hub.url}/dashboard/`);
    await page.click('#wallet-sign-in');
    await page.locator('#app').waitFor({ state: 'visible', timeout: SHOWN });
    await loaded(page, 'provider/day');
    assert.equal(await page.locator('#who-address').textContent(), payer.address);
    assert.equal(asked.length, 1);
    assert.match(
      asked[0]!,
      new RegExp(
        `^${new URL(stack.hub.url).host} wants you to sign in with your Ethereum account:\n${payer.address}\n`,
      ),
    );
    await page.click('.tab[data-page="consumer"]');
    await loaded(page, 'consumer/day');
    const spent = await stack.db.pool.query(
      'SELECT sum(increment)::text AS amount FROM exchanges WHERE consumer = $1',
      [toBytea(payer.address.toLowerCase())],
    );
    assert.equal(await shown(page, 'c-spent'), spent.rows[0].amount);
    assert.deepEqual(errors, []);
    await page.close();
  });

  it('fits a phone (390x844) without a horizontal scroll, on every page', async function () {
    this.timeout(120_000);
    const { page, errors } = await open({ viewport: { width: 390, height: 844 } });
    await noOverflow(page);
    await signInWithFile(page, stack.chain.operatorKey);
    await loaded(page, 'operator/day');
    await noOverflow(page);
    await screenshot(page, 'operator-phone');
    for (const name of ['provider', 'consumer'] as const) {
      await page.click(`.tab[data-page="${name}"]`);
      await loaded(page, `${name}/day`);
      await noOverflow(page);
    }
    await page.click('#sign-out');
    await signInWithFile(page, provider.key);
    await loaded(page, 'provider/day');
    await noOverflow(page);
    await screenshot(page, 'provider-phone');
    assert.deepEqual(errors, []);
    await page.close();
  });
});
