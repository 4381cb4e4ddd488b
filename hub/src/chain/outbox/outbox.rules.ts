import type { TransactionSerializable } from 'viem';
import { messageOf } from '../../errors/message-of';
import { ceilDiv } from '../../settlement/settlement.policy';

// The outbox's rules, as pure functions: the fees of a replacement, the fees a signed transaction
// carries, and whether the node refused a broadcast.

/** Fees of a resubmission: both raised by `bumpPercent`, at least the network's current ones, within `cap`. */
export function bumpFees(input: {
  previous: { maxFeePerGas: bigint; maxPriorityFeePerGas: bigint };
  network: { maxFeePerGas: bigint; maxPriorityFeePerGas: bigint };
  bumpPercent: number;
  cap?: bigint | undefined;
}): { maxFeePerGas: bigint; maxPriorityFeePerGas: bigint } | undefined {
  const raise = (value: bigint) => ceilDiv(value * BigInt(100 + input.bumpPercent), 100n);
  let maxPriorityFeePerGas = raise(input.previous.maxPriorityFeePerGas);
  if (input.network.maxPriorityFeePerGas > maxPriorityFeePerGas)
    maxPriorityFeePerGas = input.network.maxPriorityFeePerGas;
  let maxFeePerGas = raise(input.previous.maxFeePerGas);
  if (input.network.maxFeePerGas > maxFeePerGas) maxFeePerGas = input.network.maxFeePerGas;
  if (maxPriorityFeePerGas > maxFeePerGas) maxFeePerGas = maxPriorityFeePerGas;
  if (input.cap !== undefined && maxFeePerGas > input.cap) {
    // Nodes take a replacement only for at least +10 % on both fees; below that, wait instead.
    if (input.cap * 10n < input.previous.maxFeePerGas * 11n) return undefined;
    maxFeePerGas = input.cap;
    if (maxPriorityFeePerGas > maxFeePerGas) maxPriorityFeePerGas = maxFeePerGas;
    if (maxPriorityFeePerGas * 10n < input.previous.maxPriorityFeePerGas * 11n) return undefined;
  }
  return { maxFeePerGas, maxPriorityFeePerGas };
}

export function feesOf(transaction: TransactionSerializable): { maxFeePerGas: bigint; maxPriorityFeePerGas: bigint } {
  const { maxFeePerGas, maxPriorityFeePerGas, gasPrice } = transaction as {
    maxFeePerGas?: bigint;
    maxPriorityFeePerGas?: bigint;
    gasPrice?: bigint;
  };
  return {
    maxFeePerGas: maxFeePerGas ?? gasPrice ?? 0n,
    maxPriorityFeePerGas: maxPriorityFeePerGas ?? gasPrice ?? 0n,
  };
}

/** The errors in `error`'s cause chain, outermost first. */
function causes(error: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let current = error; current && chain.length < 20; current = (current as { cause?: unknown }).cause) {
    chain.push(current);
  }
  return chain;
}

/**
 * Whether the node answered a broadcast with an error (it does not hold the transaction), as opposed
 * to a transport failure after which it may hold it. "already known" means it does.
 */
export function refusedByNode(error: unknown): boolean {
  const chain = causes(error);
  if (chain.some((e) => /already known/i.test(messageOf(e)))) return false;
  if (
    chain.some((e) =>
      ['HttpRequestError', 'TimeoutError', 'WebSocketRequestError', 'SocketClosedError'].includes((e as Error)?.name),
    )
  ) {
    return false;
  }
  return chain.some((e) => typeof (e as { code?: unknown })?.code === 'number');
}
