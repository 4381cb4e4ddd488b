import type { ContractErrorName } from '@chit/sdk';

// The settlement policy, as pure functions of the figures they decide on: what is due, what a relayed
// settlement costs, and which faults are permanent. The services apply them.

const BPS = 10_000n;

/** Gas per promise assumed before the hub has measured its own (contracts/gas-snapshot.json). */
export const DEFAULT_GAS_PER_PROMISE = {
  /** `settleProvider.single`: a lone relayed provider settlement. */
  provider: 84_000n,
  /** `settleConsumer.batch50.perPromise`, plus a share of the transaction's base cost. */
  consumer: 20_000n,
  identity: 90_000n,
  beneficiary: 60_000n,
} as const;

/**
 * Gas of the transaction that submits an identity's EIP-2612 permit of a relayed registration's fee to the
 * Registry, before the registration (a first permit: the token's nonce and the allowance written from zero).
 */
export const PERMIT_GAS = 75_000n;

/** How many token units one wei of the gas coin is worth, as a fraction. */
export interface TokenRate {
  numerator: bigint;
  denominator: bigint;
}

/** Parses RELAYER_TOKENS_PER_WEI ("1", "0.0004", at most 18 decimals). */
export function parseTokenRate(decimal: string): TokenRate {
  const [whole = '0', fraction = ''] = decimal.split('.');
  const denominator = 10n ** BigInt(fraction.length);
  return { numerator: BigInt(whole) * denominator + BigInt(fraction || '0'), denominator };
}

export const ceilDiv = (a: bigint, b: bigint) => (a + b - 1n) / b;

/** What `gas` at `gasPrice` costs in token units, rounded up. */
export function gasCostInTokens(gas: bigint, gasPrice: bigint, rate: TokenRate): bigint {
  return ceilDiv(gas * gasPrice * rate.numerator, rate.denominator);
}

/**
 * The relayer fee quoted for settling one provider: current gas price x measured gas per promise x
 * the margin, in token units, rounded up. The margin covers the gas price moving until the request.
 */
export function quoteRelayerFee(input: {
  gasPrice: bigint;
  gasPerPromise: bigint;
  marginBps: number;
  rate: TokenRate;
}): bigint {
  const cost = input.gasPerPromise * input.gasPrice * BigInt(input.marginBps) * input.rate.numerator;
  return ceilDiv(cost, BPS * input.rate.denominator);
}

/**
 * The least relayer fee the hub accepts for a settlement request: the gas cost at the current price,
 * without margin (a quote's margin absorbs a price rise up to it between the quote and the request).
 */
export function minimumRelayerFee(input: { gasPrice: bigint; gasPerPromise: bigint; rate: TokenRate }): bigint {
  return gasCostInTokens(input.gasPerPromise, input.gasPrice, input.rate);
}

/** The hub fee on `amount` at `feeBps`, rounded down as the contract does (Fees.amountOf). */
export const hubFeeOf = (amount: bigint, feeBps: number): bigint => (amount * BigInt(feeBps)) / BPS;

/**
 * Whether a consumer claim is worth a place in a batch: it must collect more than its share of the
 * batch's gas costs, unless the consumer is exiting (then whatever is left must be collected first).
 */
export function consumerClaimWorthIt(input: { collectable: bigint; gasCost: bigint; exiting: boolean }): boolean {
  if (input.collectable <= 0n) return false;
  return input.exiting || input.collectable > input.gasCost;
}

/**
 * Whether the hub settles a provider on its own (no relayer fee; the hub pays the gas): at least
 * `threshold` unsettled, and the gas no more than `maxFeeShareBps` of the amount. A threshold of 0
 * turns hub-initiated provider settlements off.
 */
export function providerSettlementDue(input: {
  unsettled: bigint;
  threshold: bigint;
  gasCost: bigint;
  maxFeeShareBps: number;
}): boolean {
  if (input.threshold === 0n || input.unsettled < input.threshold) return false;
  return input.gasCost * BPS <= input.unsettled * BigInt(input.maxFeeShareBps);
}

/**
 * Whether a provider batch short of free funds waits for consumer settlements first. The hub's relayer
 * waits for the first half of a job's attempts; after that it settles anyway, and the contract takes
 * the rest from the stake (as it would for the provider settling alone).
 */
export function waitForFreeFunds(input: { freeFunds: bigint; outflow: bigint; attempt: number; attempts: number }) {
  return input.freeFunds < input.outflow && input.attempt < Math.ceil(input.attempts / 2);
}

/** Reverts that the contract will give again for the same claim: the job is failed, not retried. */
const PERMANENT_REVERTS = new Set<ContractErrorName>([
  'HubInvalidSignature',
  'HubRelayerFeeTooHigh',
  'HubZeroAmount',
  'HubZeroAddress',
  'HubConsumerBalanceEmpty',
  'RegistryInvalidSignature',
  'RegistryIdentityAlreadyRegistered',
  'RegistryIdentityNotRegistered',
  'RegistryZeroAddress',
  'ERC20InsufficientAllowance',
  'ERC20InsufficientBalance',
  'ECDSAInvalidSignature',
  'ECDSAInvalidSignatureLength',
  'ECDSAInvalidSignatureS',
]);

/** Reverts meaning the claim was already settled (by anyone): the settlement is done, not failed. */
const ALREADY_SETTLED_REVERTS = new Set<ContractErrorName>(['HubConsumerPromiseStale', 'HubProviderPromiseStale']);

export type RevertClass = 'permanent' | 'settled' | 'transient';

/** What a decoded revert means for the job that got it. */
export function classifyRevert(errorName: ContractErrorName): RevertClass {
  if (ALREADY_SETTLED_REVERTS.has(errorName)) return 'settled';
  if (PERMANENT_REVERTS.has(errorName)) return 'permanent';
  return 'transient';
}

/** Settlement ids: also the BullMQ job ids (no ':' allowed there), keyed by channel and amount. */
export const settlementId = {
  consumer: (consumer: string, total: bigint) => `c-${consumer.toLowerCase()}-${total}`,
  provider: (provider: string, total: bigint) => `p-${provider.toLowerCase()}-${total}`,
  identity: (identity: string, nonce: bigint) => `identity-${identity.toLowerCase()}-${nonce}`,
  beneficiary: (identity: string, nonce: bigint) => `beneficiary-${identity.toLowerCase()}-${nonce}`,
};
