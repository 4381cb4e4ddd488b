/**
 * A buyer pays an API sold for Chit payments (x402, the `chit` scheme of `@chit/x402`; docs/buyers.md):
 *
 *   1. a consumer deposits into its channel at the hub with an EIP-2612 permit;
 *   2. `chitFetch` makes REQUESTS requests to URL, paying each 402 with a promise from its
 *      ConsumerLedger, within its price maximums and spending limits;
 *   3. a buyer that allows less than the seller asks is refused before anything is signed;
 *   4. the consumer's books at the hub show what the seller was credited.
 *
 * Start a seller first (examples/sell-api.ts, or `npx chit provide http`, docs/sellers.md), then:
 *
 *   node --import tsx examples/buy-api.ts
 *
 * Environment (defaults fit `npm start` and examples/sell-api.ts): URL (http://127.0.0.1:4021/weather),
 * REQUESTS (5), HUB_URL, RPC_URL, FUNDER_KEY (pays the fresh consumer's gas and tokens: demo account #1),
 * CONSUMER_KEY (a fresh key by default; when set, the account must hold ETH and tokens itself),
 * STORE_DIR (the consumer's store; a fresh temporary folder by default), MAX_PRICE_PER_REQUEST (0.001)
 * and MAX_PRICE_PER_MIB (0.01), in tokens.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  ChitError,
  ConsumerLedger,
  chitTokenAbi,
  depositWithPermit,
  HubClient,
  HubError,
  signDepositPermit,
  waitForTransaction,
} from '@chit/sdk';
import { FileStore } from '@chit/sdk/node';
import { chitFetch, RequirementsRejectedError, SpendingLimitError } from '@chit/x402';
import {
  type Address,
  createPublicClient,
  createWalletClient,
  defineChain,
  formatEther,
  type Hex,
  http,
  parseEther,
} from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';

const URL_TO_PAY = process.env.URL ?? 'http://127.0.0.1:4021/weather';
const REQUESTS = Number(process.env.REQUESTS ?? 5);
const HUB_URL = process.env.HUB_URL ?? 'http://127.0.0.1:8080';
const RPC_URL = process.env.RPC_URL ?? 'http://127.0.0.1:8545';
/** Demo account #1 of `npm start` (anvil's mnemonic): it funds a fresh consumer. Local chains only. */
const FUNDER_KEY = (process.env.FUNDER_KEY ??
  '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d') as Hex;
const MAX_PRICE_PER_REQUEST = parseEther(process.env.MAX_PRICE_PER_REQUEST ?? '0.001');
const MAX_PRICE_PER_MIB = parseEther(process.env.MAX_PRICE_PER_MIB ?? '0.01');
/** What the consumer deposits (the token has 18 decimals). */
const DEPOSIT = parseEther('1');

const tokens = (amount: bigint) => `${formatEther(amount)} tokens`;
const log = (line = '') => console.log(line);

async function main(): Promise<void> {
  const hub = new HubClient({ url: HUB_URL, retry: { attempts: 3 } });
  const info = await hub.info();
  const chain = defineChain({
    id: info.chainId,
    name: `chain ${info.chainId}`,
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [RPC_URL] } },
  });
  const publicClient = createPublicClient({ chain, transport: http(RPC_URL), pollingInterval: 250 });
  const wallet = (key: Hex) =>
    createWalletClient({ account: privateKeyToAccount(key), chain, transport: http(RPC_URL), pollingInterval: 250 });
  const consumer = wallet((process.env.CONSUMER_KEY as Hex | undefined) ?? generatePrivateKey());
  log(`Consumer ${consumer.account.address}${process.env.CONSUMER_KEY ? '' : ' (fresh key)'}`);

  if (!process.env.CONSUMER_KEY) {
    // A fresh consumer needs gas and tokens: the funder sends both.
    const funder = wallet(FUNDER_KEY);
    const gas = await funder.sendTransaction({ to: consumer.account.address, value: parseEther('1') });
    await waitForTransaction(publicClient, { hash: gas });
    const transfer = await funder.writeContract({
      address: info.token,
      abi: chitTokenAbi,
      functionName: 'transfer',
      args: [consumer.account.address, DEPOSIT],
    });
    await waitForTransaction(publicClient, { hash: transfer });
  }

  // ------------------------------------------------------------ 1. deposit

  const { timestamp } = await publicClient.getBlock();
  const permit = await signDepositPermit(consumer, { hub: info.hub, amount: DEPOSIT, deadline: timestamp + 3600n });
  const deposited = await depositWithPermit(consumer, { permit });
  await waitForTransaction(publicClient, { hash: deposited.hash });
  // The hub credits promises only against deposits its chain follower has seen.
  await waitForDeposit(hub, consumer.account.address, DEPOSIT);
  log(`1. Deposited ${tokens(DEPOSIT)} at the hub ${info.hub}`);

  // ------------------------------------------------------------ 2. paid requests

  // The store keeps the consumer's cumulative total (never lose it), the usage meters of each seller
  // and the hour's spending.
  const storeDir = process.env.STORE_DIR ?? mkdtempSync(path.join(tmpdir(), 'chit-buy-api-'));
  const store = new FileStore(storeDir);
  const ledger = new ConsumerLedger({ hub: info.hub, chainId: info.chainId, account: consumer.account, store });
  const pay = chitFetch(fetch, {
    ledger,
    token: info.token,
    store,
    maxPricePerRequest: MAX_PRICE_PER_REQUEST,
    maxPricePerMiB: MAX_PRICE_PER_MIB,
    limits: { perRequest: parseEther('0.01'), perAgreement: parseEther('0.5'), perHour: parseEther('0.1') },
  });
  log(`2. ${REQUESTS} requests to ${URL_TO_PAY}`);
  for (let i = 1; i <= REQUESTS; i++) {
    const before = await ledger.total();
    const response = await pay(URL_TO_PAY);
    const body = await response.text();
    // What this request signed: its price, plus the previous response's MiB at the seller's price.
    const signed = (await ledger.total()) - before;
    log(`   ${i}: ${response.status}, ${body.length} bytes, signed ${tokens(signed)}: ${body.slice(0, 60)}`);
    if (response.status !== 200) throw new Error(`the seller answered ${response.status}`);
  }
  log(`   spent in the last hour: ${tokens(await pay.scheme.spentLastHour())}`);

  // ------------------------------------------------------------ 3. a buyer that allows less

  const stingy = chitFetch(fetch, { ledger, token: info.token, store, maxPricePerRequest: 1n });
  try {
    await stingy(URL_TO_PAY);
    throw new Error('a buyer paid more than it allows');
  } catch (error) {
    if (error instanceof RequirementsRejectedError)
      log(`3. Refused, nothing signed: ${error.reason}, ${error.shortMessage}`);
    else if (error instanceof SpendingLimitError) log(`3. Refused, nothing signed: ${error.limit}`);
    else throw error;
  }

  // ------------------------------------------------------------ 4. the books at the hub

  const books = await hub.consumer(consumer.account.address);
  log(
    `4. At the hub: promised ${tokens(books.promised)}, credited ${tokens(books.credited)}, available ${tokens(books.available)}`,
  );

  if (!process.env.STORE_DIR) rmSync(storeDir, { recursive: true, force: true });
  log('Done.');
}

/** Polls the hub until its chain follower has applied the deposit (the consumer is unknown until then). */
async function waitForDeposit(hub: HubClient, consumer: Address, amount: bigint): Promise<bigint> {
  for (let i = 0; i < 120; i++) {
    try {
      const account = await hub.consumer(consumer);
      if (account.balance >= amount) return account.balance;
    } catch (error) {
      if (!(error instanceof HubError && error.code === 'UNKNOWN_CONSUMER')) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error('the hub did not see the deposit within 60 s: is its chain follower running?');
}

main().catch((error: unknown) => {
  // Every SDK error has a stable `code`, a one-line `shortMessage` and `details`.
  if (error instanceof ChitError) console.error(`${error.code}: ${error.shortMessage}\n${error.details ?? ''}`);
  else console.error(error);
  process.exitCode = 1;
});
