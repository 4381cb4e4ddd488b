import {
  decodeFunctionData,
  type Hash,
  type Hex,
  type TransactionReceipt,
  TransactionReceiptNotFoundError,
  WaitForTransactionReceiptTimeoutError,
} from 'viem';
import { call, getBlockNumber, getTransaction, getTransactionReceipt, waitForTransactionReceipt } from 'viem/actions';
import { ContractCallError, type ContractRevertError, decodeContractError } from '../errors/contract.js';
import { chitTokenAbi, hubAbi, registryAbi } from '../generated/abis.js';
import { guard } from './internal/guard.js';
import type { ChitClient } from './types.js';

/**
 * Parameters of {@link waitForTransaction}.
 *
 * @example
 * const parameters: WaitForTransactionParameters = { hash };
 */
export interface WaitForTransactionParameters {
  /** The transaction. */
  hash: Hash;
  /** Blocks to wait for on top of the one that includes it; 1 (just mined) when omitted. */
  confirmations?: number | undefined;
  /** Milliseconds to wait before giving up; viem's default (180 s) when omitted. */
  timeout?: number | undefined;
}

/**
 * What {@link waitForTransaction} returns.
 *
 * @example
 * const result: WaitForTransactionReturnType = await waitForTransaction(walletClient, { hash });
 */
export type WaitForTransactionReturnType = TransactionReceipt;

/**
 * What {@link waitForTransaction} throws: The decoded revert of a mined transaction that failed, or a {@link
 * ContractCallError}.
 *
 * @example
 * try {
 *   await waitForTransaction(walletClient, { hash });
 * } catch (e) {
 *   const error = e as WaitForTransactionErrorType;
 *   if (error instanceof ContractRevertError && error.is('HubConsumerPromiseStale')) {
 *     console.error(error.shortMessage);
 *   }
 * }
 */
export type WaitForTransactionErrorType = ContractRevertError | ContractCallError;

/**
 * Waits until the transaction is mined and returns its receipt. A transaction that reverted on-chain
 * (someone settled or exited first between simulation and inclusion) throws its typed error: the call
 * is replayed on the state after its block to read the revert.
 *
 * @throws {ContractRevertError} the transaction's revert, decoded, when the replay reproduces it.
 * @throws {ContractCallError} for a revert the replay cannot explain, a timeout or a node failure.
 * @example
 * const { hash } = await settleProvider(walletClient, { promise, preimage });
 * const receipt = await waitForTransaction(walletClient, { hash });
 * console.log('settled in block', receipt.blockNumber);
 */
export async function waitForTransaction(
  client: ChitClient,
  parameters: WaitForTransactionParameters,
): Promise<WaitForTransactionReturnType> {
  const { hash } = parameters;
  const receipt = await guard(() => receiptOf(client, parameters));
  if (receipt.status === 'success') return receipt;

  const transaction = await guard(() => getTransaction(client, { hash }));
  try {
    await call(client, {
      account: transaction.from,
      to: transaction.to,
      data: transaction.input,
      value: transaction.value,
      gas: transaction.gas,
      blockNumber: receipt.blockNumber,
    });
  } catch (error) {
    throw decodeContractError(error, {
      contractAddress: transaction.to ?? undefined,
      functionName: functionOf(transaction.input),
    });
  }
  throw new ContractCallError({
    shortMessage: `The transaction ${hash} reverted`,
    details:
      `Replaying it on the state after block ${receipt.blockNumber} succeeds: ` +
      'another transaction in that block changed what it depended on.',
    contractAddress: transaction.to ?? undefined,
    functionName: functionOf(transaction.input),
  });
}

/**
 * viem's wait (which also notices a replacement, e.g. a wallet's speed-up) raced with a plain poll of
 * the receipt. A node can answer a receipt query with null just after mining (anvil does): viem then
 * waits for the next block, which on a quiet chain may never come, or gives up with "receipt not
 * found"; the poll asks again.
 */
async function receiptOf(client: ChitClient, parameters: WaitForTransactionParameters): Promise<TransactionReceipt> {
  const { hash, confirmations = 1, timeout = 180_000 } = parameters;
  const stop = new AbortController();
  const viemWait: Promise<TransactionReceipt> = waitForTransactionReceipt(client, {
    hash,
    confirmations,
    timeout,
    signal: stop.signal,
  }).catch((error: unknown) => {
    // By name: a client built with another copy of viem (a CommonJS caller of this ESM SDK gets the
    // other build) runs its own getTransactionReceipt, whose error class is not this copy's.
    if (stop.signal.aborted || isReceiptNotFound(error)) return poll;
    throw error;
  });
  const poll: Promise<TransactionReceipt> = (async () => {
    const deadline = Date.now() + timeout;
    while (!stop.signal.aborted) {
      const receipt = await getTransactionReceipt(client, { hash }).catch(() => undefined);
      if (receipt && (await getBlockNumber(client, { cacheTime: 0 })) - receipt.blockNumber + 1n >= confirmations) {
        return receipt;
      }
      if (Date.now() > deadline) throw new WaitForTransactionReceiptTimeoutError({ hash });
      await new Promise((resolve) => setTimeout(resolve, client.pollingInterval));
    }
    return viemWait;
  })();
  try {
    return await Promise.race([viemWait, poll]);
  } finally {
    stop.abort();
  }
}

/** Whether `error` is viem's "receipt not found" (anvil's answer just after mining), from any copy of viem. */
function isReceiptNotFound(error: unknown): boolean {
  return (
    error instanceof TransactionReceiptNotFoundError ||
    (error instanceof Error && error.name === 'TransactionReceiptNotFoundError')
  );
}

/** The name of the Chit function `input` calls, if it calls one. */
function functionOf(input: Hex): string | undefined {
  for (const abi of [hubAbi, registryAbi, chitTokenAbi]) {
    try {
      return decodeFunctionData({ abi, data: input }).functionName;
    } catch {}
  }
  return undefined;
}
