/**
 * A consumer pays a provider per minute and per GiB through a Chit hub, end to end:
 *
 *   1. a consumer deposits into its channel at the hub with an EIP-2612 permit (one transaction);
 *   2. a provider's ProviderSession invoices every minute; the consumer's ConsumerSession checks each
 *      invoice against the time and traffic it measured and answers with a signed promise;
 *   3. the provider exchanges each promise at the hub for a hub promise, R sealed in the exchange
 *      (ProviderLedger);
 *   4. an overcharging invoice is refused; the books at the hub show what the provider earned.
 *
 * Against the stack of `npm start` (see examples/README.md):
 *
 *   node --import tsx examples/pay-per-minute.ts
 *
 * Environment (defaults fit `npm start`): HUB_URL, RPC_URL, FUNDER_KEY (pays the fresh consumer's gas
 * and tokens: demo account #1), CONSUMER_KEY and PROVIDER_KEY (fresh keys by default), STORE_DIR
 * (where both sides keep their state; a fresh temporary folder by default), MINUTES, SETTLE=1 (also
 * settle the provider's earnings through the hub's relayer).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  ChitError,
  ConsumerLedger,
  ConsumerSession,
  chitTokenAbi,
  decodeMessage,
  depositWithPermit,
  encodeMessage,
  getHubInfo,
  HubClient,
  HubError,
  type Invoice,
  newHashlock,
  OverchargeError,
  ProviderLedger,
  ProviderSession,
  signDepositPermit,
  waitForTransaction,
} from '@chit/sdk';
import { FileStore } from '@chit/sdk/node';
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

// ---------------------------------------------------------------- configuration

const HUB_URL = process.env.HUB_URL ?? 'http://127.0.0.1:8080';
const RPC_URL = process.env.RPC_URL ?? 'http://127.0.0.1:8545';
/** Demo account #1 of `npm start` (anvil's mnemonic): it funds a fresh consumer. Local chains only. */
const FUNDER_KEY = (process.env.FUNDER_KEY ??
  '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d') as Hex;
const MINUTES = Number(process.env.MINUTES ?? 5);
const SETTLE = process.env.SETTLE === '1';
/** What the consumer deposits, and the provider's prices (the token has 18 decimals). */
const DEPOSIT = parseEther('10');
const PRICES = { perMinute: parseEther('0.01'), perGiB: parseEther('0.05') };
/** Traffic per minute as the provider counts it; the consumer counts 1 % less (lost packets). */
const BYTES_PER_MINUTE = 300n * 1024n * 1024n;

const tokens = (amount: bigint) => `${formatEther(amount)} tokens`;
const log = (line = '') => console.log(line);

async function main(): Promise<void> {
  // ------------------------------------------------------------ the hub and the chain

  const hub = new HubClient({ url: HUB_URL, retry: { attempts: 3 } });
  const info = await hub.info();
  const chain = defineChain({
    id: info.chainId,
    name: `chain ${info.chainId}`,
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [RPC_URL] } },
  });
  const publicClient = createPublicClient({ chain, transport: http(RPC_URL), pollingInterval: 250 });
  if ((await publicClient.getChainId()) !== info.chainId) {
    throw new Error(`the hub is on chain ${info.chainId}, the RPC at ${RPC_URL} is not`);
  }
  // The operator is read on-chain: hub promises are worth something only when the Hub contract's
  // operator signed them, whatever the hub's service says about itself.
  const onChain = await getHubInfo(publicClient, { hub: info.hub });
  if (onChain.operator !== info.operator)
    throw new Error(`the hub service signs as ${info.operator}, not the operator`);
  log(
    `Hub ${info.hub} on chain ${info.chainId}: ${onChain.status}, fee ${onChain.fee / 100} %, stake ${tokens(onChain.stake)}`,
  );

  // ------------------------------------------------------------ the parties

  const wallet = (key: Hex) =>
    createWalletClient({ account: privateKeyToAccount(key), chain, transport: http(RPC_URL), pollingInterval: 250 });
  const consumerKey = (process.env.CONSUMER_KEY as Hex | undefined) ?? generatePrivateKey();
  const providerKey = (process.env.PROVIDER_KEY as Hex | undefined) ?? generatePrivateKey();
  const consumer = wallet(consumerKey);
  const provider = privateKeyToAccount(providerKey);
  log(`Consumer ${consumer.account.address}${process.env.CONSUMER_KEY ? '' : ' (fresh key)'}`);
  log(`Provider ${provider.address}${process.env.PROVIDER_KEY ? '' : ' (fresh key)'}`);

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
    log(`Funded the consumer from ${funder.account.address}: 1 ETH and ${tokens(DEPOSIT)}`);
  }

  // ------------------------------------------------------------ 1. deposit with a permit

  // The permit's deadline is counted from the chain's clock (as the default, one hour, is).
  const { timestamp } = await publicClient.getBlock();
  const permit = await signDepositPermit(consumer, { hub: info.hub, amount: DEPOSIT, deadline: timestamp + 3600n });
  const deposited = await depositWithPermit(consumer, { permit });
  await waitForTransaction(publicClient, { hash: deposited.hash });
  log(`\n1. Deposited ${tokens(DEPOSIT)} with a permit (${deposited.hash})`);
  const seen = await waitForDeposit(hub, consumer.account.address, DEPOSIT);
  log(`   the hub's chain follower has seen it: balance ${tokens(seen)}`);

  // ------------------------------------------------------------ 2. the two sessions

  // Both sides keep their state in a durable store. The consumer's must never be lost: it holds the
  // cumulative total the consumer signed. The provider's can be (the hub gives the latest promise back).
  const storeDir = process.env.STORE_DIR ?? mkdtempSync(path.join(tmpdir(), 'chit-example-'));
  // A simulated clock shared by both sides, so that five minutes of service take a few seconds here.
  // A real application leaves `clock` out (Date.now).
  let now = Date.now();
  const clock = () => now;

  const providerLedger = new ProviderLedger({
    hub,
    account: provider,
    store: new FileStore(path.join(storeDir, 'provider')),
    expect: { hub: info.hub, chainId: info.chainId, operator: onChain.operator },
  });
  // The transport between the two sides is the application's (a socket, the VPN's control channel);
  // here it is a variable holding the JSON each side would send.
  let wire: string | undefined;
  const providerSession = new ProviderSession({
    ledger: providerLedger,
    consumer: consumer.account.address,
    prices: PRICES,
    intervalMs: 60_000,
    clock,
    send: (invoice) => {
      wire = JSON.stringify(encodeMessage(invoice));
    },
  });
  providerSession.on('stop', (unpaid) => log(`   provider: ${unpaid} unpaid invoices, stop serving`));

  const consumerLedger = new ConsumerLedger({
    hub: info.hub,
    chainId: info.chainId,
    account: consumer.account,
    store: new FileStore(path.join(storeDir, 'consumer')),
  });
  const consumerSession = new ConsumerSession({
    ledger: consumerLedger,
    provider: provider.address,
    agreementId: providerSession.agreementId,
    prices: PRICES,
    clock,
  });
  log(
    `\n2. Session ${providerSession.agreementId.slice(0, 10)}…: ${tokens(PRICES.perMinute)} a minute, ${tokens(PRICES.perGiB)} a GiB`,
  );

  // ------------------------------------------------------------ 3. invoices, promises, exchanges

  let lastInvoice: Invoice | undefined;
  for (let minute = 1; minute <= MINUTES; minute++) {
    now += 60_000;
    providerSession.addTraffic(BYTES_PER_MINUTE);
    consumerSession.addTraffic((BYTES_PER_MINUTE * 99n) / 100n);

    // The provider invoices what is due (a fresh hashlock each time, its R stored first)…
    wire = undefined;
    await providerSession.tick();
    if (!wire) throw new Error(`minute ${minute}: the provider sent no invoice`);
    // …the consumer checks it against its own measurements and signs its cumulative total…
    const invoice = decodeMessage('invoice', JSON.parse(wire));
    lastInvoice = invoice;
    const promise = await consumerSession.pay(invoice);
    const answer = JSON.stringify(encodeMessage(promise));
    // …and the provider checks the promise, and exchanges it at the hub.
    const hubPromise = await providerSession.receivePromise(decodeMessage('consumerPromise', JSON.parse(answer)));
    log(
      `   minute ${minute}: invoice ${tokens(invoice.agreementTotal)} → consumer promise (total ${tokens(promise.total)}) → hub promise ${tokens(hubPromise.total)}`,
    );
  }
  const { hubPromise, preimage } = await providerLedger.latest();
  log(`   the provider holds the hub promise of ${tokens(hubPromise!.total)} and its R ${preimage!.slice(0, 10)}…`);

  // ------------------------------------------------------------ 4. an invoice the consumer refuses

  if (lastInvoice) {
    const greedy: Invoice = {
      ...lastInvoice,
      agreementTotal: lastInvoice.agreementTotal + parseEther('1'),
      hashlock: newHashlock().hashlock,
    };
    try {
      await consumerSession.pay(greedy);
      throw new Error('the consumer paid an overcharging invoice');
    } catch (error) {
      if (!(error instanceof OverchargeError)) throw error;
      log(`\n3. Refused an invoice of ${tokens(greedy.agreementTotal)}: ${error.code}, ${error.shortMessage}`);
    }
  }

  // ------------------------------------------------------------ 5. the books at the hub

  const earned = await hub.provider(provider.address);
  const paying = await hub.consumer(consumer.account.address);
  log('\n4. The books at the hub');
  log(
    `   provider: earned ${tokens(earned.earned)}, settled ${tokens(earned.settled)}, unsettled ${tokens(earned.unsettled)}`,
  );
  log(
    `   consumer: balance ${tokens(paying.balance)}, promised ${tokens(paying.promised)}, available ${tokens(paying.available)}`,
  );
  const quote = await hub.settlementQuote(provider.address);
  log(
    `   settling now would pay ${tokens(quote.amount - quote.hubFee - quote.relayerFee)} (hub fee ${tokens(quote.hubFee)}, relayer fee ${tokens(quote.relayerFee)})`,
  );

  if (SETTLE) {
    // The provider holds no gas: the hub's relayer settles for it, paid the quoted relayer fee.
    const job = await providerLedger.settle(quote.relayerFee);
    log(`\n5. Settlement ${job.id} requested through the hub's relayer`);
    const settlement = await waitForSettlement(hub, job.id);
    const paid = await publicClient.readContract({
      address: info.token,
      abi: chitTokenAbi,
      functionName: 'balanceOf',
      args: [provider.address],
    });
    log(`   ${settlement.status} in ${settlement.txHash}; the provider (its own beneficiary) holds ${tokens(paid)}`);
  }

  providerSession.close();
  consumerSession.close();
  if (!process.env.STORE_DIR) rmSync(storeDir, { recursive: true, force: true });
  log('\nDone.');
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

/** Polls a settlement until it is confirmed or failed. */
async function waitForSettlement(hub: HubClient, id: string) {
  for (let i = 0; i < 240; i++) {
    const settlement = await hub.settlement(id);
    if (settlement.status === 'confirmed') return settlement;
    if (settlement.status === 'failed')
      throw new Error(`settlement ${id} failed (${settlement.error?.code}): ${settlement.error?.message}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error(`settlement ${id} was not confirmed within 120 s`);
}

main().catch((error: unknown) => {
  // Every SDK error has a stable `code`, a one-line `shortMessage` and `details`.
  if (error instanceof ChitError) console.error(`${error.code}: ${error.shortMessage}\n${error.details ?? ''}`);
  else console.error(error);
  process.exitCode = 1;
});
