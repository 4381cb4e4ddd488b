import {
  getHubInfo,
  getProviderChannel,
  type HubClient,
  HubError,
  type HubInfo,
  HubTimeoutError,
  HubUnreachableError,
  hashlockOf,
  type ProviderChannel,
  type SignedHubPromise,
  signRecoveryRequest,
  verifyHubPromise,
} from '@chit/sdk';
import { type Address, type Hex, isAddressEqual } from 'viem';
import type { CliContext } from './context.js';
import { CliError } from './errors.js';
import { listLedgers } from './provider-store.js';

/** The provider's latest hub promise, its R, and what settling it would pay now. */
export interface ProviderClaim {
  /** Where the promise came from: the hub's recovery answer, or the provider's own store. */
  source: 'hub' | 'store';
  hub: Address;
  provider: Address;
  /** The latest hub promise, checked: for this hub, chain and provider, signed by the operator. */
  promise: SignedHubPromise;
  /** Its R, checked against its hashlock. */
  preimage: Hex;
  /** The hub on-chain: its operator and the fee in force. */
  info: HubInfo;
  /** The provider on-chain: what was settled, and its beneficiary. */
  channel: ProviderChannel;
  /** `promise.total - channel.settled`: what settling pays before fees; zero when nothing is owed. */
  owed: bigint;
  /** The hub fee on `owed` at the fee in force, rounded down as the contract does. */
  hubFee: bigint;
}

/**
 * The provider's claim, from the hub when a hub URL is set and the hub answers (as
 * {@link fetchProviderClaim}), else from the provider's store (as {@link storedProviderClaim}), saying
 * so in one line on stderr. A hub that answers is never second-guessed: only one that does not answer
 * at all (no connection, a timeout, a 5xx after retries) is passed over.
 *
 * @example
 * const claim = await loadProviderClaim(ctx);
 * if (claim && claim.owed > 0n) await settleProvider(wallet, claim);
 */
export async function loadProviderClaim(ctx: CliContext): Promise<ProviderClaim | undefined> {
  const hubClient = ctx.hubClient();
  const store = ctx.config.store.value;
  if (!hubClient) {
    ctx.out.progress(`no hub URL is set: using the latest hub promise in the store ${store}`);
    return storedProviderClaim(ctx, 'No hub URL is set');
  }
  try {
    return await fetchProviderClaim(ctx, hubClient);
  } catch (error) {
    if (!doesNotAnswer(error)) throw error;
    ctx.out.warn(
      `the hub at ${hubClient.url} does not answer (${silence(error)}): using the latest hub promise in the store ${store}`,
    );
    return storedProviderClaim(ctx, `The hub at ${hubClient.url} does not answer`);
  }
}

/** No answer from the hub's service at all, as opposed to an answer that refuses. */
function doesNotAnswer(error: unknown): boolean {
  if (error instanceof HubUnreachableError || error instanceof HubTimeoutError) return true;
  return error instanceof HubError && error.retryable && error.status >= 500;
}

/** How the hub did not answer, in a few words: `ECONNREFUSED`, `no answer within 10000 ms`, `503 UNAVAILABLE`. */
function silence(error: unknown): string {
  if (error instanceof HubTimeoutError) return `no answer within ${error.timeoutMs} ms`;
  if (error instanceof HubError) return `${error.status} ${error.code}`;
  for (let cause = (error as Error).cause; cause instanceof Error; cause = cause.cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (typeof code === 'string') return code;
  }
  return 'no connection';
}

/**
 * Fetches the provider's latest hub promise and its R from the hub's recovery endpoint (a
 * `RecoveryRequest` signed with the identity key), checks both, and reads what is owed on-chain.
 * Returns undefined when the hub holds no promise for the provider.
 *
 * @throws {CliError} `BAD_HUB_PROMISE` when the hub's answer is not a promise it can settle.
 * @example
 * const claim = await fetchProviderClaim(ctx, ctx.requireHubClient('settling'));
 */
export async function fetchProviderClaim(ctx: CliContext, hubClient: HubClient): Promise<ProviderClaim | undefined> {
  const client = await ctx.publicClient();
  const hub = await ctx.hub();
  const account = await ctx.account();
  const provider = account.address;

  ctx.out.progress(`asking the hub at ${hubClient.url} for the latest promise to ${provider}…`);
  const request = await signRecoveryRequest(account, {
    hub,
    chainId: client.chain.id,
    provider,
    issuedAt: BigInt(Math.floor(Date.now() / 1000)),
  });
  let answer: Awaited<ReturnType<typeof hubClient.recovery>>;
  try {
    answer = await hubClient.recovery(request);
  } catch (error) {
    if (error instanceof HubError && error.code === 'UNKNOWN_PROVIDER') return undefined;
    throw error;
  }
  const { hubPromise: promise, preimage } = answer;
  if (!promise) return undefined;
  return checkClaim(ctx, 'hub', hub, provider, promise, preimage, (problem) => {
    return new CliError(
      'BAD_HUB_PROMISE',
      `The hub's latest promise cannot be settled: ${problem}`,
      'Nothing was sent.',
      { details: 'Report it to the hub operator, or choose another hub.' },
    );
  });
}

/**
 * The latest hub promise to the identity and its R from the provider's store (the documents its
 * ProviderLedger keeps, see {@link listLedgers}), checked as the hub's answer is: for the RPC's chain and
 * this identity, R opens the hashlock, signed by the operator the Hub contract names. Needs no hub
 * service: the hub is the promise's (or `--hub`, when the store holds promises of several hubs).
 *
 * @param why Why the store is used, for the error when it holds nothing: "No hub URL is set".
 * @throws {CliError} `STORE_NO_PROMISE` when the store holds no hub promise to the identity on this
 * chain; `HUB_AMBIGUOUS` when it holds some of several hubs and none is chosen; `BAD_STORED_PROMISE`
 * when the stored promise cannot be settled.
 * @example
 * const claim = await storedProviderClaim(ctx, 'No hub URL is set');
 */
export async function storedProviderClaim(ctx: CliContext, why: string): Promise<ProviderClaim> {
  const client = await ctx.publicClient();
  const chainId = client.chain.id;
  const provider = await ctx.address();
  const store = ctx.store();
  const hub = ctx.config.hub?.value;
  const ledgers = (await listLedgers(store, { chainId, provider, ...(hub ? { hub } : {}) })).filter(
    (ledger) => ledger.promise !== null,
  );
  if (ledgers.length === 0) {
    throw new CliError(
      'STORE_NO_PROMISE',
      `${why}, and the store ${store.directory} holds no hub promise to ${provider} on chain ${chainId}${hub ? ` from the hub ${hub}` : ''}`,
      'Point --store (CHIT_STORE, or "store" in the config file) at the directory of your ProviderLedger\'s FileStore, or restore a backup with `chit store import <file>`.',
    );
  }
  if (ledgers.length > 1) {
    throw new CliError(
      'HUB_AMBIGUOUS',
      `The store ${store.directory} holds hub promises to ${provider} from ${ledgers.length} hubs: ${ledgers.map((ledger) => ledger.hub).join(', ')}`,
      'Choose one with --hub <address> (or CHIT_HUB).',
    );
  }
  const { hub: storedHub, promise, preimage } = ledgers[0]!;
  ctx.useHub(storedHub);
  return checkClaim(ctx, 'store', storedHub, provider, promise!, preimage, (problem) => {
    return new CliError(
      'BAD_STORED_PROMISE',
      `The hub promise in the store ${store.directory} cannot be settled: ${problem}`,
      'Nothing was sent. Restore the store from a backup (`chit store import <file>`), or settle through the hub with --hub-url.',
    );
  });
}

/**
 * Checks a hub promise and its R before anything is sent (this hub and chain, this provider, R opens the
 * hashlock, signed by the operator the Hub contract names), and reads what settling it pays now.
 */
async function checkClaim(
  ctx: CliContext,
  source: ProviderClaim['source'],
  hub: Address,
  provider: Address,
  promise: SignedHubPromise,
  preimage: Hex | null,
  bad: (problem: string) => CliError,
): Promise<ProviderClaim> {
  const client = await ctx.publicClient();
  if (!isAddressEqual(promise.hub, hub) || promise.chainId !== client.chain.id) {
    throw bad(`it is for the hub ${promise.hub} on chain ${promise.chainId}`);
  }
  if (!isAddressEqual(promise.provider, provider)) throw bad(`it is for ${promise.provider}, not ${provider}`);
  const holder = source === 'hub' ? 'the hub does' : 'the store does';
  if (!preimage) throw bad(`${holder} not have its R`);
  if (hashlockOf(preimage) !== promise.hashlock.toLowerCase()) {
    throw bad(`the R ${source === 'hub' ? 'the hub sent' : 'in the store'} does not open its hashlock`);
  }

  const [info, channel] = await Promise.all([
    getHubInfo(client, { hub }),
    getProviderChannel(client, { hub, provider }),
  ]);
  if (!verifyHubPromise(promise, info.operator)) throw bad(`it is not signed by the hub's operator ${info.operator}`);
  const owed = promise.total > channel.settled ? promise.total - channel.settled : 0n;
  return {
    source,
    hub,
    provider,
    promise,
    preimage,
    info,
    channel,
    owed,
    hubFee: (owed * BigInt(info.fee)) / 10_000n,
  };
}
