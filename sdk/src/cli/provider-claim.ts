import { type Address, type Hex, isAddressEqual } from 'viem';
import { getHubInfo, type HubInfo } from '../actions/getHubInfo.js';
import { getProviderChannel, type ProviderChannel } from '../actions/getProviderChannel.js';
import { HubError } from '../hub-client/errors.js';
import { hashlockOf } from '../protocol/hash.js';
import { signRecoveryRequest } from '../protocol/sign.js';
import type { SignedHubPromise } from '../protocol/types.js';
import { verifyHubPromise } from '../protocol/verify.js';
import type { CliContext } from './context.js';
import { CliError } from './errors.js';

/** The provider's latest hub promise, its R, and what settling it would pay now. */
export interface ProviderClaim {
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
 * Fetches the provider's latest hub promise and its R from the hub's recovery endpoint (a
 * `RecoveryRequest` signed with the identity key), checks both, and reads what is owed on-chain.
 * Returns undefined when the hub holds no promise for the provider.
 *
 * @throws {CliError} `BAD_HUB_PROMISE` when the hub's answer is not a promise it can settle.
 * @example
 * const claim = await fetchProviderClaim(ctx);
 * if (claim && claim.owed > 0n) await settleProvider(wallet, claim);
 */
export async function fetchProviderClaim(ctx: CliContext): Promise<ProviderClaim | undefined> {
  const hubClient = ctx.requireHubClient('settling');
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

  const bad = (problem: string) =>
    new CliError('BAD_HUB_PROMISE', `The hub's latest promise cannot be settled: ${problem}`, 'Nothing was sent.', {
      details: 'Report it to the hub operator, or choose another hub.',
    });
  if (!isAddressEqual(promise.hub, hub) || promise.chainId !== client.chain.id) {
    throw bad(`it is for the hub ${promise.hub} on chain ${promise.chainId}`);
  }
  if (!isAddressEqual(promise.provider, provider)) throw bad(`it is for ${promise.provider}, not ${provider}`);
  if (!preimage) throw bad('the hub does not have its R');
  if (hashlockOf(preimage) !== promise.hashlock) throw bad('the R the hub sent does not open its hashlock');

  const [info, channel] = await Promise.all([
    getHubInfo(client, { hub }),
    getProviderChannel(client, { hub, provider }),
  ]);
  if (!verifyHubPromise(promise, info.operator)) throw bad(`it is not signed by the hub's operator ${info.operator}`);
  const owed = promise.total > channel.settled ? promise.total - channel.settled : 0n;
  return { hub, provider, promise, preimage, info, channel, owed, hubFee: (owed * BigInt(info.fee)) / 10_000n };
}
