import { ConsumerLedger, getHubInfo, ProviderLedger, type SettlementPolicy } from '@chit/sdk';
import { nativePreimageSealer, nativeVerifier } from '@chit/sdk/node';
import type { Address, Hex, LocalAccount } from 'viem';
import type { CliContext } from './context.js';
import { CliError } from './errors.js';

// `chit provide http` and `chit pay` run on @chit/x402, which is built on the SDK: it is loaded when
// one of them runs, never at build time, so the command line does not depend on it. The shapes below
// are the parts of its API these commands use (x402/src/gateway.ts, x402/src/fetch.ts).

/** The prices of a route, in token base units. */
export interface RoutePrices {
  pricePerRequest?: bigint;
  pricePerMiB?: bigint;
}

/** What @chit/x402's `startGateway` reports. */
export type GatewayEvent =
  | { type: 'forwarded'; method: string; path: string; status: number; bytes: number }
  | { type: 'upstream-error'; method: string; path: string; message: string }
  | { type: 'cut-off'; method: string; path: string; status: number; bytes: number }
  | { type: 'settlement'; detail: unknown }
  | { type: 'settlement-error'; message: string };

/** The part of @chit/x402 that `chit` uses. */
export interface X402Module {
  startGateway(options: {
    upstream: string;
    hubUrl: string;
    ledger: ProviderLedger;
    secret: Hex;
    pricePerRequest: bigint;
    pricePerMiB?: bigint;
    routes?: Record<string, RoutePrices>;
    port?: number;
    host?: string;
    corsOrigins?: string[];
    settleEveryMs?: number;
    onEvent?: (event: GatewayEvent) => void;
  }): Promise<{ url: string; close(): Promise<void> }>;
  chitFetch(
    fetch: typeof globalThis.fetch,
    options: {
      ledger: ConsumerLedger;
      token: Address;
      maxPricePerRequest: bigint;
      maxPricePerMiB?: bigint;
      limits?: { perRequest?: bigint; perAgreement?: bigint; perHour?: bigint };
      store?: ProviderLedger['store'];
    },
    fetchOptions?: { stream?: boolean },
  ): (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>;
}

/**
 * Loads @chit/x402, or says how to install it.
 *
 * @example
 * const { startGateway } = await loadX402();
 */
export async function loadX402(): Promise<X402Module> {
  // A variable specifier: TypeScript does not resolve it, so building chit never needs @chit/x402.
  const specifier = '@chit/x402';
  try {
    return (await import(specifier)) as X402Module;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'MODULE_NOT_FOUND') throw error;
    throw new CliError(
      'X402_MISSING',
      'This command needs the package @chit/x402, which is not installed (or not built)',
      'In the Chit checkout run `npm run build -w x402`; elsewhere `npm install @chit/x402`.',
    );
  }
}

/**
 * The identity's ProviderLedger at the configured hub, in the configured store, pinned to the operator
 * the Hub contract names on-chain.
 *
 * @example
 * const ledger = await providerLedger(ctx);
 */
export async function providerLedger(ctx: CliContext, settlementPolicy?: SettlementPolicy): Promise<ProviderLedger> {
  const hubClient = ctx.requireHubClient('selling');
  const info = await ctx.hubInfo();
  const onChain = await getHubInfo(await ctx.publicClient(), { hub: info.hub });
  const ledger = new ProviderLedger({
    hub: hubClient,
    account: await ctx.account(),
    store: ctx.store(),
    // A gateway exchanges for every paid request: native signature checks and sealing.
    verifier: nativeVerifier(),
    preimageSealer: nativePreimageSealer,
    expect: { hub: info.hub, chainId: info.chainId, operator: onChain.operator },
    ...(settlementPolicy ? { settlementPolicy } : {}),
  });
  await ledger.open();
  return ledger;
}

/**
 * The identity's ConsumerLedger at the configured hub, kept in the configured store.
 *
 * @example
 * const ledger = await consumerLedger(ctx);
 */
export async function consumerLedger(ctx: CliContext): Promise<{ ledger: ConsumerLedger; account: LocalAccount }> {
  const info = await ctx.hubInfo();
  const account = await ctx.account();
  const ledger = new ConsumerLedger({
    hub: info.hub,
    chainId: info.chainId,
    account,
    store: ctx.store(),
    verifier: nativeVerifier(),
  });
  return { ledger, account };
}
