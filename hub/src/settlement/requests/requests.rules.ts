import { getAddress } from 'viem';
import type { Hex } from '../../db/bytes';
import { HubError } from '../../errors/hub-error';
import { hubFeeOf } from '../settlement.policy';

// The rules of settlement and relay requests, as pure functions of the figures read for them: each
// refuses a request with the error its client can act on.

export type RelayKind = 'identity' | 'identity-permit' | 'beneficiary';

/** A permit must leave the relayer this long (block time) to submit it. */
export const PERMIT_MARGIN_SECONDS = 60n;

export const PERMIT_TYPES = {
  Permit: [
    { name: 'owner', type: 'address' },
    { name: 'spender', type: 'address' },
    { name: 'value', type: 'uint256' },
    { name: 'nonce', type: 'uint256' },
    { name: 'deadline', type: 'uint256' },
  ],
} as const;

export function unknownProvider(provider: Hex): HubError {
  const address = getAddress(provider);
  return new HubError('UNKNOWN_PROVIDER', `The hub has no promise for ${address}`, { provider: address });
}

/**
 * Refuses a provider settlement request the relayer would not send: NOTHING_TO_SETTLE when the chain has
 * the hub promise settled; RELAYER_FEE_TOO_HIGH when the fee is more than the provider would be paid
 * (after the hub fee); RELAYER_FEE_TOO_LOW when it does not cover the gas at the current price.
 */
export function requireProviderSettlement(input: {
  total: bigint;
  settled: bigint;
  relayerFee: bigint;
  hubFeeBps: number;
  minimum: bigint;
}): void {
  const { total, settled, relayerFee, minimum } = input;
  if (total <= settled) {
    throw new HubError('NOTHING_TO_SETTLE', 'This hub promise is settled already', {
      total: total.toString(),
      settled: settled.toString(),
    });
  }
  const amount = total - settled;
  const net = amount - hubFeeOf(amount, input.hubFeeBps);
  if (relayerFee > net) {
    throw new HubError('RELAYER_FEE_TOO_HIGH', 'The relayer fee is more than the provider would be paid', {
      relayerFee: relayerFee.toString(),
      payout: net.toString(),
    });
  }
  if (relayerFee < minimum) {
    throw new HubError('RELAYER_FEE_TOO_LOW', 'The relayer fee does not cover the gas: ask for a new quote', {
      relayerFee: relayerFee.toString(),
      minimum: minimum.toString(),
    });
  }
}

/**
 * Refuses a relayed Registry action whose fee is below its gas cost at the current price (the quote
 * without its margin, as for settlement requests): RELAYER_FEE_TOO_LOW with that minimum.
 */
export function requireRelayFee(kind: RelayKind, relayerFee: bigint, minimum: bigint): void {
  if (relayerFee >= minimum) return;
  const message =
    kind === 'beneficiary'
      ? 'The Registry pays no relayer fee for a beneficiary change and its gas is not free here: send setBeneficiary yourself'
      : `The relayer fee does not cover the gas: ask for a new quote (GET /v1/quotes/relay?kind=${kind})`;
  throw new HubError('RELAYER_FEE_TOO_LOW', message, {
    relayerFee: relayerFee.toString(),
    minimum: minimum.toString(),
  });
}

/** Refuses a permit that expires within PERMIT_MARGIN_SECONDS of block time: INVALID_SIGNATURE. */
export function requirePermitDeadline(deadline: bigint, blockTimestamp: bigint): void {
  if (deadline >= blockTimestamp + PERMIT_MARGIN_SECONDS) return;
  throw new HubError(
    'INVALID_SIGNATURE',
    'The permit expires too soon for the relayer to submit it: sign a new one with a later deadline',
    { deadline: deadline.toString(), blockTimestamp: blockTimestamp.toString() },
  );
}

/**
 * Refuses a relayer fee the Registry could not take from the identity: its balance is short, or its
 * allowance to the Registry is and no permit comes with the request: RELAYER_FEE_UNPAYABLE.
 */
export function requirePayable(input: {
  relayerFee: bigint;
  balance: bigint;
  allowance: bigint;
  permitted: boolean;
  token: Hex;
  registry: Hex;
}): void {
  const { relayerFee, balance, allowance } = input;
  if (balance >= relayerFee && (input.permitted || allowance >= relayerFee)) return;
  throw new HubError(
    'RELAYER_FEE_UNPAYABLE',
    'The Registry takes the relayer fee from the identity’s tokens: its balance and its allowance to the Registry must hold it',
    {
      relayerFee: relayerFee.toString(),
      balance: balance.toString(),
      allowance: allowance.toString(),
      token: getAddress(input.token),
      spender: getAddress(input.registry),
    },
  );
}
