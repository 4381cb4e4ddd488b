import type { Prices } from '@chit/sdk';

// The expected figures, computed from first principles (prices, simulated time, traffic, the fee
// schedule), not by the code under test: the SDK's pricing and the hub's books are checked against them.

export const GIB = 1n << 30n;
export const MIB = 1n << 20n;
const MINUTE_MS = 60_000n;

/**
 * What `ms` of service and `bytes` of traffic cost at `prices`, in token units, rounded down once: the
 * provider invoices no fraction it has not earned.
 */
export function cost(prices: Prices, ms: number, bytes: bigint): bigint {
  return (prices.perMinute * BigInt(ms) * GIB + prices.perGiB * bytes * MINUTE_MS) / (MINUTE_MS * GIB);
}

/** The hub fee on `amount` at `bps` basis points, rounded down (in the provider's favour). */
export function feeOf(amount: bigint, bps: number): bigint {
  return (amount * BigInt(bps)) / 10_000n;
}

export const sum = (values: bigint[]) => values.reduce((a, b) => a + b, 0n);
