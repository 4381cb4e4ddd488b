import { getAddress } from 'viem';
import { available } from '../../books/consumer-money';
import type { Hex } from '../../db/bytes';
import { HubError } from '../../errors/hub-error';

// The instant-exit rules, as pure functions of the books and the chain read: how much the operator
// co-signs and reserves, and what becomes of a reservation once its nonce is spent or its deadline passes.

/** A used instant exit whose `exited` event never came is released after this long (the follower lags less). */
export const USED_EXIT_RELEASE_MS = 3_600_000;

/** How far an instant-exit request's `issuedAt` may be from the hub's clock (as for recovery requests). */
export const REQUEST_WINDOW_SECONDS = 300n;

/** A co-signed exit of a consumer's nonce, and the amount it holds back from the exchange. */
export interface InstantExitRecord {
  consumer: Hex;
  nonce: bigint;
  amount: bigint;
  reserved: bigint;
  deadline: bigint;
  signature: Hex;
  status: 'reserved' | 'used' | 'released';
  updatedAt: Date;
}

/** The books of a consumer an instant exit is decided on, with the reservation for the current nonce. */
export interface InstantExitState {
  consumer: Hex;
  balance: bigint;
  settled: bigint;
  signedTotal: bigint;
  credited: bigint;
  exitAmount: bigint;
  exitReserved: bigint;
  existing: InstantExitRecord | undefined;
}

/** The consumer's channel as the Hub contract holds it now. */
export interface ChannelNow {
  balance: bigint;
  settled: bigint;
  exitAmount: bigint;
}

/** What to do with a co-signature request: answer the reservation held, or sign and reserve `reserved` until `deadline`. */
export type InstantExitDecision =
  | { kind: 'repeat'; existing: InstantExitRecord }
  | { kind: 'sign'; deadline: bigint; reserved: bigint };

/** Refuses a request whose `issuedAt` is more than five minutes off `now`: STALE_REQUEST. */
export function requireFreshRequest(issuedAt: bigint, now: bigint): void {
  const age = now - issuedAt;
  if (age > REQUEST_WINDOW_SECONDS || age < -REQUEST_WINDOW_SECONDS) {
    throw new HubError('STALE_REQUEST', 'Sign a new instant-exit request: issuedAt must be within 5 minutes of now', {
      issuedAt: issuedAt.toString(),
      now: now.toString(),
    });
  }
}

/**
 * Decides a co-signature of `amount` for the consumer's current nonce: the reservation held is answered
 * again while it has more than half its validity left; otherwise the amount must fit the consumer's
 * available money (books/consumer-money.ts), less other co-signed exits, taking the worse of the books
 * and the chain for each figure: OVERSPEND. UNKNOWN_CONSUMER without a channel.
 */
export function decideInstantExit(input: {
  consumer: Hex;
  amount: bigint;
  state: InstantExitState | undefined;
  channel: ChannelNow;
  chainNow: bigint;
  validitySeconds: bigint;
}): InstantExitDecision {
  const { state, channel, amount, chainNow, validitySeconds } = input;
  if (!state) {
    const checksummed = getAddress(input.consumer);
    throw new HubError('UNKNOWN_CONSUMER', `${checksummed} has no channel at this hub`, { consumer: checksummed });
  }
  const existing = state.existing?.status === 'reserved' ? state.existing : undefined;
  if (existing && existing.amount === amount && existing.deadline - chainNow > validitySeconds / 2n) {
    return { kind: 'repeat', existing };
  }
  // The books (the follower's) and the chain may differ by the confirmations: take the worse of each.
  const free = available({
    balance: min(state.balance, channel.balance),
    settled: max(state.settled, channel.settled),
    signedTotal: state.signedTotal,
    credited: state.credited,
    exitAmount: max(state.exitAmount, channel.exitAmount),
    exitReserved: state.exitReserved - (existing?.reserved ?? 0n),
  });
  if (amount > free) {
    throw new HubError('OVERSPEND', 'The consumer asks for more than its channel holds beyond what it owes', {
      amount: amount.toString(),
      available: free.toString(),
    });
  }
  // Another signature for this nonce may still be used instead: reserve the larger of the two.
  return { kind: 'sign', deadline: chainNow + validitySeconds, reserved: max(amount, existing?.reserved ?? 0n) };
}

/** What a sweep does with a reservation. */
export type SweepAction = 'use' | 'release' | 'keep';

/**
 * A reservation whose nonce was spent (`spent` is the consumer's nonce now) is marked used, and released
 * an hour later if the `exited` event never released it; one whose deadline passed with its nonce
 * unspent can never be used and is released.
 */
export function sweepAction(
  reservation: InstantExitRecord,
  chain: { spent: bigint; timestamp: bigint },
  nowMs: number,
): SweepAction {
  if (chain.spent > reservation.nonce) {
    if (reservation.status === 'reserved') return 'use';
    return nowMs - reservation.updatedAt.getTime() > USED_EXIT_RELEASE_MS ? 'release' : 'keep';
  }
  return chain.timestamp > reservation.deadline ? 'release' : 'keep';
}

export const min = (a: bigint, b: bigint) => (a < b ? a : b);
export const max = (a: bigint, b: bigint) => (a > b ? a : b);
