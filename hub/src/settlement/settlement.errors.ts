import type { SettlementErrorCode } from './settlement.types';

/** An error that knows the failure code a settlement records for it (its message is the failure's message). */
export class SettlementFault extends Error {
  override name = 'SettlementFault';

  constructor(
    message: string,
    readonly code: SettlementErrorCode,
  ) {
    super(message);
  }
}

/**
 * A fault the same job would meet again (a bad signature, a revert the contract will always give): the
 * settlement is failed with this message and code, and its job is not retried (BullMQ UnrecoverableError).
 */
export class PermanentFault extends SettlementFault {
  override name = 'PermanentFault';
}

/**
 * The transaction's nonce went to another transaction (`REPLACED`), or every attempt was refused
 * (`DROPPED`): send again.
 */
export class TransactionLostError extends SettlementFault {
  override name = 'TransactionLostError';

  constructor(message: string, code: 'DROPPED' | 'REPLACED') {
    super(message, code);
  }
}

/** The pipeline is closing: the job goes back to the queue without using up an attempt. */
export class ShuttingDown extends Error {
  override name = 'ShuttingDown';
}

/** Resolves after `ms`, or rejects with {@link ShuttingDown} when `signal` aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new ShuttingDown('closing'));
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new ShuttingDown('closing'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
