/**
 * A seller's Express app whose routes are paid per request (and per MiB of response) with Chit
 * promises, through x402 and the `chit` scheme of `@chit/x402` (docs/sellers.md):
 *
 *   GET /weather         0.001 tokens a request
 *   GET /files/<KiB>     0.0001 tokens a request, plus 0.01 tokens a MiB of response (paid with the next request)
 *   GET /                free: what is sold here
 *
 * Every paid request is exchanged at the hub for a hub promise, kept in the provider's store; a request
 * without a payment is answered 402 with the price and an invoice. Runs until Ctrl-C, then prints what
 * the provider earned at the hub.
 *
 * Against the stack of `npm start` (see examples/README.md), then pay it with examples/buy-api.ts or
 * `npx chit pay`:
 *
 *   node --import tsx examples/sell-api.ts
 *
 * Environment (defaults fit `npm start`): HUB_URL, RPC_URL, PROVIDER_KEY (a fresh key by default: a
 * seller needs no gas or tokens), STORE_DIR (the provider's store: its hub promises and the invoice
 * secret; a fresh temporary folder by default), PORT (4021), HOST (127.0.0.1).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ChitError, getHubInfo, HubClient, ProviderLedger } from '@chit/sdk';
import { FileStore } from '@chit/sdk/node';
import { chitPaywall } from '@chit/x402';
import { paymentMiddleware } from '@x402/express';
import express from 'express';
import { createPublicClient, formatEther, type Hex, http, parseEther } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';

const HUB_URL = process.env.HUB_URL ?? 'http://127.0.0.1:8080';
const RPC_URL = process.env.RPC_URL ?? 'http://127.0.0.1:8545';
const PORT = Number(process.env.PORT ?? 4021);
const HOST = process.env.HOST ?? '127.0.0.1';
/** The invoice secret's key in the store (R = HMAC(secret, nonce)): kept so a restart honours earlier invoices. */
const SECRET_KEY = 'examples/sell-api/secret';

const tokens = (amount: bigint) => `${formatEther(amount)} tokens`;
const log = (line = '') => console.log(line);

async function main(): Promise<void> {
  const hub = new HubClient({ url: HUB_URL, retry: { attempts: 3 } });
  const info = await hub.info();
  // The operator is read on-chain: a hub promise is worth something only when the Hub contract's
  // operator signed it, whatever the hub's service says about itself.
  const publicClient = createPublicClient({ transport: http(RPC_URL) });
  if ((await publicClient.getChainId()) !== info.chainId) {
    throw new Error(`the hub is on chain ${info.chainId}, the RPC at ${RPC_URL} is not`);
  }
  const { operator } = await getHubInfo(publicClient, { hub: info.hub });

  const provider = privateKeyToAccount((process.env.PROVIDER_KEY as Hex | undefined) ?? generatePrivateKey());
  const storeDir = process.env.STORE_DIR ?? mkdtempSync(path.join(tmpdir(), 'chit-sell-api-'));
  const store = new FileStore(storeDir);
  const ledger = new ProviderLedger({
    hub,
    account: provider,
    store,
    expect: { hub: info.hub, chainId: info.chainId, operator },
  });

  // The invoice secret: made once, then read back from the store on every start.
  let secret = (await store.get(SECRET_KEY)) as Hex | undefined;
  if (!secret) {
    secret = `0x${randomBytes(32).toString('hex')}`;
    await store.put(SECRET_KEY, secret);
  }

  // Prices in token base units (the token has 18 decimals). Routes not listed here are free.
  const { routes, server } = await chitPaywall({
    hubUrl: HUB_URL,
    ledger,
    secret,
    routes: {
      'GET /weather': {
        pricePerRequest: parseEther('0.001'),
        description: 'the weather',
        mimeType: 'application/json',
      },
      'GET /files/*': { pricePerRequest: parseEther('0.0001'), pricePerMiB: parseEther('0.01') },
    },
  });

  const app = express();
  app.use(paymentMiddleware(routes, server));
  app.get('/weather', (_req, res) => {
    res.json({ city: 'Lisbon', sky: 'sunny', celsius: 21 });
  });
  app.get('/files/:kib', (req, res) => {
    const kib = Math.min(Number(req.params.kib) || 1, 10_240);
    res.type('text/plain').send('x'.repeat(kib * 1024));
  });
  app.get('/', (_req, res) => {
    res.json({ provider: provider.address, hub: info.hub, paid: Object.keys(routes) });
  });

  const listening = app.listen(PORT, HOST);
  await new Promise((resolve, reject) => listening.once('listening', resolve).once('error', reject));
  const url = `http://${HOST}:${PORT}`;
  log(`Selling at ${url}: GET /weather and GET /files/<KiB>, paid with Chit at the hub ${info.hub}`);
  log(`Provider ${provider.address}${process.env.PROVIDER_KEY ? '' : ' (fresh key)'}, store ${storeDir}`);
  log(`Pay it:  URL=${url}/weather node --import tsx examples/buy-api.ts`);
  log(`Or:      npx chit pay ${url}/weather --max-price-per-request 0.001`);
  log('Ctrl-C to stop.');

  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      listening.close(() => resolve());
      listening.closeAllConnections();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });

  // What the buyers' promises earned: the hub owes it to the provider until it settles.
  const earned = await hub.provider(provider.address).catch(() => undefined);
  if (earned) {
    log(`\nEarned at the hub: ${tokens(earned.earned)} (settled ${tokens(earned.settled)}).`);
    log(
      process.env.PROVIDER_KEY
        ? 'Settle it with `npx chit settle` from an identity of that key (`npx chit identity import`), or ledger.settle(relayerFee).'
        : 'The key was fresh and is gone with this run: set PROVIDER_KEY to keep what you earn.',
    );
  } else {
    log('\nNothing was paid.');
  }
}

main().catch((error: unknown) => {
  // Every SDK error has a stable `code`, a one-line `shortMessage` and `details`.
  if (error instanceof ChitError) console.error(`${error.code}: ${error.shortMessage}\n${error.details ?? ''}`);
  else console.error(error);
  process.exitCode = 1;
});
