import { InvalidOptionError } from '../hub-client/errors.js';

/** A provider's prices, in the token's smallest unit. Either may be zero. */
export interface Prices {
  /** Price of one minute of service. */
  perMinute: bigint;
  /** Price of one GiB (2^30 bytes) of traffic. */
  perGiB: bigint;
}

/**
 * How far a provider's invoice may exceed what the consumer measured, and still be paid. Both sides
 * compare cumulative totals, so the tolerance is a fixed margin over the whole session: it does not
 * add up with each invoice.
 *
 * The defaults:
 * - `timeMs` 5 s: the provider starts its clock when the tunnel is up, the consumer when it asked for
 *   it, and an invoice takes a round trip to arrive; 5 s covers both on any working link, and is 0.14 %
 *   of an hour.
 * - `trafficBps` 300 (3 %): the two sides count at different points: packets the provider sent that
 *   were lost before the consumer counted them, and retransmissions, are a few percent on a poor link.
 * - `trafficBytes` 4 MiB: bytes in flight when the invoice is made (about 1 Gbit/s for 32 ms), which
 *   dominate at the start of a session when the percentage is still small.
 * - `amount` 0: an extra margin in token units, for providers that round up.
 */
export interface PriceTolerance {
  /** Extra time the provider may bill, in milliseconds. Default 5,000. */
  timeMs?: number;
  /** Extra traffic the provider may bill, in basis points of the measured bytes. Default 300 (3 %). */
  trafficBps?: number;
  /** Extra traffic the provider may bill, in bytes, on top of `trafficBps`. Default 4 MiB. */
  trafficBytes?: bigint;
  /** Extra amount, in token units, on top of everything else. Default 0. */
  amount?: bigint;
}

/**
 * The default {@link PriceTolerance}: 5 s, 3 % + 4 MiB, no extra amount.
 *
 * @example
 * const lenient = { ...DEFAULT_TOLERANCE, trafficBps: 500 };
 */
export const DEFAULT_TOLERANCE: Readonly<Required<PriceTolerance>> = Object.freeze({
  timeMs: 5_000,
  trafficBps: 300,
  trafficBytes: 4n * 1024n * 1024n,
  amount: 0n,
});

/**
 * Bytes in a GiB (2^30), the unit of `Prices.perGiB`.
 *
 * @example
 * const cost = (bytes * prices.perGiB) / GIB;
 */
export const GIB = 1n << 30n;
const MINUTE_MS = 60_000n;

/**
 * Fills in the defaults of a {@link PriceTolerance} and checks its values.
 *
 * @example
 * resolveTolerance({ timeMs: 10_000 }).trafficBps; // 300
 */
export function resolveTolerance(tolerance: PriceTolerance = {}): Required<PriceTolerance> {
  const resolved = { ...DEFAULT_TOLERANCE, ...definedOnly(tolerance) };
  if (!Number.isInteger(resolved.timeMs) || resolved.timeMs < 0) {
    throw new InvalidOptionError('tolerance.timeMs', `expected a non-negative integer, got ${resolved.timeMs}`);
  }
  if (!Number.isInteger(resolved.trafficBps) || resolved.trafficBps < 0) {
    throw new InvalidOptionError('tolerance.trafficBps', `expected a non-negative integer, got ${resolved.trafficBps}`);
  }
  if (resolved.trafficBytes < 0n) throw new InvalidOptionError('tolerance.trafficBytes', 'expected >= 0');
  if (resolved.amount < 0n) throw new InvalidOptionError('tolerance.amount', 'expected >= 0');
  return resolved;
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, inner]) => inner !== undefined)) as Partial<T>;
}

/**
 * Checks prices: non-negative bigints.
 *
 * @example
 * checkPrices({ perMinute: 10n ** 15n, perGiB: 10n ** 16n });
 */
export function checkPrices(prices: Prices): Prices {
  if (typeof prices.perMinute !== 'bigint' || prices.perMinute < 0n) {
    throw new InvalidOptionError('prices.perMinute', 'expected a non-negative bigint');
  }
  if (typeof prices.perGiB !== 'bigint' || prices.perGiB < 0n) {
    throw new InvalidOptionError('prices.perGiB', 'expected a non-negative bigint');
  }
  return prices;
}

/**
 * What `elapsedMs` of service and `bytes` of traffic cost at `prices`, computed exactly in bigint and
 * rounded once: down for the provider (it never bills a fraction it has not earned), up for the
 * consumer's check (it never refuses a fraction the provider rounded differently).
 *
 * @example
 * amountDue({ perMinute: 60n, perGiB: 0n }, 90_000, 0n); // 90n
 */
export function amountDue(
  prices: Prices,
  elapsedMs: number | bigint,
  bytes: bigint,
  rounding: 'down' | 'up' = 'down',
): bigint {
  const ms = typeof elapsedMs === 'bigint' ? elapsedMs : BigInt(Math.floor(elapsedMs));
  const time = ms > 0n ? ms : 0n;
  const traffic = bytes > 0n ? bytes : 0n;
  const numerator = prices.perMinute * time * GIB + prices.perGiB * traffic * MINUTE_MS;
  const denominator = MINUTE_MS * GIB;
  return rounding === 'up' ? (numerator + denominator - 1n) / denominator : numerator / denominator;
}

/** What a consumer's measurements justify, and the most it accepts with its tolerance. */
export interface Allowance {
  /** What the measured time and traffic cost, rounded up. */
  justified: bigint;
  /** `justified` plus the tolerance: the highest amount the consumer pays. */
  allowed: bigint;
}

/**
 * The consumer's allowance for `elapsedMs` and `bytes` at `prices`, with `tolerance`.
 *
 * @example
 * const { justified, allowed } = allowance(prices, 60_000, 10n ** 9n, resolveTolerance());
 */
export function allowance(
  prices: Prices,
  elapsedMs: number,
  bytes: bigint,
  tolerance: Required<PriceTolerance>,
): Allowance {
  const justified = amountDue(prices, elapsedMs, bytes, 'up');
  const slackBytes = (bytes * BigInt(tolerance.trafficBps) + 9_999n) / 10_000n + tolerance.trafficBytes;
  const allowed = amountDue(prices, elapsedMs + tolerance.timeMs, bytes + slackBytes, 'up') + tolerance.amount;
  return { justified, allowed };
}

/**
 * Converts a byte count given as a number or bigint to a non-negative bigint.
 *
 * @example
 * toBytes(1500); // 1500n
 */
export function toBytes(bytes: number | bigint): bigint {
  if (typeof bytes === 'number' && !Number.isSafeInteger(bytes)) {
    throw new InvalidOptionError('bytes', `expected a safe integer, got ${bytes}`);
  }
  const value = BigInt(bytes);
  if (value < 0n) throw new InvalidOptionError('bytes', `expected >= 0, got ${value}`);
  return value;
}
