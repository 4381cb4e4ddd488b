import { InvalidOptionError } from '../hub-client/errors.js';

/** When a provider settles its unsettled hub promises on-chain. */
export interface SettlementPolicyOptions {
  /** Settle once at least this much is unsettled (token units). */
  threshold: bigint;
  /**
   * The most the fees (hub fee + relayer fee) may take of the amount settled, in basis points: 200
   * accepts losing up to 2 %. Applies before the deadline only.
   */
  maxFeeShareBps: number;
  /**
   * Unix seconds by which everything must be settled, whatever the fee and the amount: the hub
   * closing, a punished hub, a payout the provider needs. Optional.
   */
  deadline?: number;
  /** How long before `deadline` settling becomes unconditional. Default 3,600 s. */
  deadlineMarginSeconds?: number;
}

/** What a settlement would settle and cost, as a hub quotes it. */
export interface SettlementInput {
  /** The amount that would be settled. */
  amount: bigint;
  /** The hub fee on it. */
  hubFee: bigint;
  /** What the relayer would keep. */
  relayerFee: bigint;
  /** Unix seconds. */
  now: number;
}

/** Why a {@link SettlementDecision} was taken. */
export type SettlementReason =
  | 'NOTHING_TO_SETTLE'
  | 'FEES_EXCEED_AMOUNT'
  | 'DEADLINE'
  | 'WORTH_IT'
  | 'BELOW_THRESHOLD'
  | 'FEE_TOO_HIGH';

/** A settlement decision, with the figures to show before settling. */
export interface SettlementDecision {
  settle: boolean;
  reason: SettlementReason;
  /** The amount that would be settled. */
  amount: bigint;
  /** Hub fee + relayer fee: what settling now takes. */
  fee: bigint;
  /** What the beneficiary would receive: `amount - fee` (0 when the fees take everything). */
  net: bigint;
  /** `fee` as a share of `amount`, in basis points, rounded up (10,000 when nothing to settle). */
  feeShareBps: number;
}

function check(options: SettlementPolicyOptions): Required<Omit<SettlementPolicyOptions, 'deadline'>> & {
  deadline: number | undefined;
} {
  if (typeof options.threshold !== 'bigint' || options.threshold < 0n) {
    throw new InvalidOptionError('threshold', 'expected a non-negative bigint');
  }
  if (!Number.isInteger(options.maxFeeShareBps) || options.maxFeeShareBps < 0 || options.maxFeeShareBps > 10_000) {
    throw new InvalidOptionError('maxFeeShareBps', `expected an integer in [0, 10000], got ${options.maxFeeShareBps}`);
  }
  const deadlineMarginSeconds = options.deadlineMarginSeconds ?? 3_600;
  if (!(deadlineMarginSeconds >= 0)) throw new InvalidOptionError('deadlineMarginSeconds', 'expected >= 0');
  return {
    threshold: options.threshold,
    maxFeeShareBps: options.maxFeeShareBps,
    deadline: options.deadline,
    deadlineMarginSeconds,
  };
}

/**
 * Whether to settle now, as a pure function of the policy and a fee quote:
 * 1. nothing to settle, or fees that take all of it: never;
 * 2. from `deadline - deadlineMarginSeconds` on: always;
 * 3. otherwise when `amount >= threshold` and `fee <= amount * maxFeeShareBps / 10,000`.
 * `fee` is the hub fee plus the relayer fee, what the beneficiary loses by settling now.
 *
 * @example
 * const decision = decideSettlement(
 *   { threshold: 10n ** 18n, maxFeeShareBps: 200 },
 *   { amount: quote.amount, hubFee: quote.hubFee, relayerFee: quote.relayerFee, now: Math.floor(Date.now() / 1000) },
 * );
 * if (decision.settle) console.log(`settling ${decision.amount}, fees ${decision.fee}`);
 */
export function decideSettlement(policy: SettlementPolicyOptions, input: SettlementInput): SettlementDecision {
  const options = check(policy);
  const { amount } = input;
  const fee = input.hubFee + input.relayerFee;
  const net = amount > fee ? amount - fee : 0n;
  const feeShareBps = amount > 0n ? Number(min((fee * 10_000n + amount - 1n) / amount, 10_000n)) : 10_000;
  const decision = (settle: boolean, reason: SettlementReason): SettlementDecision => ({
    settle,
    reason,
    amount,
    fee,
    net,
    feeShareBps,
  });
  if (amount <= 0n) return decision(false, 'NOTHING_TO_SETTLE');
  if (fee >= amount) return decision(false, 'FEES_EXCEED_AMOUNT');
  if (options.deadline !== undefined && input.now >= options.deadline - options.deadlineMarginSeconds) {
    return decision(true, 'DEADLINE');
  }
  if (amount < options.threshold) return decision(false, 'BELOW_THRESHOLD');
  if (fee * 10_000n > amount * BigInt(options.maxFeeShareBps)) return decision(false, 'FEE_TOO_HIGH');
  return decision(true, 'WORTH_IT');
}

function min(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

/**
 * A provider's settlement policy (see {@link decideSettlement}), with a deadline that can move: set one
 * when the hub starts closing or is punished.
 *
 * @example
 * const policy = new SettlementPolicy({ threshold: 5n * 10n ** 18n, maxFeeShareBps: 150 });
 * policy.setDeadline(hubClosesAt);
 * const decision = policy.decide({ amount, hubFee, relayerFee, now: Math.floor(Date.now() / 1000) });
 */
export class SettlementPolicy {
  #options: SettlementPolicyOptions;

  constructor(options: SettlementPolicyOptions) {
    check(options);
    this.#options = { ...options };
  }

  /** The policy's current options. */
  get options(): Readonly<SettlementPolicyOptions> {
    return this.#options;
  }

  /**
   * Sets (or clears, with `undefined`) the deadline, in unix seconds; an earlier deadline already set
   * is kept unless `replace` is true.
   *
   * @example
   * policy.setDeadline(Number(exitReadyAt));
   */
  setDeadline(deadline: number | undefined, replace = false): void {
    const current = this.#options.deadline;
    const next = replace || current === undefined || deadline === undefined ? deadline : Math.min(current, deadline);
    this.#options = { ...this.#options, deadline: next };
  }

  /**
   * The decision for a quote, now.
   *
   * @example
   * const { settle, fee, net } = policy.decide({ amount, hubFee, relayerFee, now });
   */
  decide(input: SettlementInput): SettlementDecision {
    return decideSettlement(this.#options, input);
  }

  /**
   * Whether a quote is worth asking for: the estimated unsettled amount reaches the threshold, or the
   * deadline is near. Saves a hub request per payment.
   *
   * @example
   * if (policy.worthQuoting(estimate, now)) quote = await hub.settlementQuote(provider);
   */
  worthQuoting(estimatedAmount: bigint, now: number): boolean {
    if (estimatedAmount <= 0n) return false;
    const { deadline, deadlineMarginSeconds = 3_600, threshold } = this.#options;
    if (deadline !== undefined && now >= deadline - deadlineMarginSeconds) return true;
    return estimatedAmount >= threshold;
  }
}
