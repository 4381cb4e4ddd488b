import type { Address, Hex } from 'viem';
import { InvalidOptionError } from '../hub-client/errors.js';
import type { SignedConsumerPromise } from '../protocol/types.js';
import { PromiseRejectedError } from './errors.js';
import type { ProviderLedger } from './provider-ledger.js';
import type { PendingInvoice } from './provider-session.types.js';
import { sameHex } from './util.js';

/**
 * Checks a consumer promise against the invoice of the session it pays (hub, chain, provider,
 * agreement, consumer when known, hashlock among the `unpaid` invoices, total), and returns that invoice.
 *
 * @throws {PromiseRejectedError} the promise does not pay an open invoice of the session.
 */
export function checkPromise(
  promise: SignedConsumerPromise,
  ledger: ProviderLedger,
  agreementId: Hex,
  consumer: Address | undefined,
  unpaid: PendingInvoice[],
): PendingInvoice {
  const info = ledger.info;
  if (!sameHex(promise.hub, info.hub)) {
    reject('WRONG_HUB', `Wrong hub: the promise is for ${promise.hub}, not ${info.hub}`, 'Sign for the invoice’s hub.');
  }
  if (promise.chainId !== info.chainId) {
    reject(
      'WRONG_CHAIN',
      `Wrong chain: the promise is for ${promise.chainId}, not ${info.chainId}`,
      'Sign for the invoice’s chain.',
    );
  }
  if (!sameHex(promise.agreement.provider, ledger.provider)) {
    reject(
      'WRONG_PROVIDER',
      `Wrong provider: the promise pays ${promise.agreement.provider}, not ${ledger.provider}`,
      'Send the promise to the provider that invoiced.',
    );
  }
  if (!sameHex(promise.agreement.id, agreementId)) {
    reject(
      'WRONG_AGREEMENT',
      `Wrong agreement: the promise pays ${promise.agreement.id}, this session is ${agreementId}`,
      'Send the promise to the session that invoiced.',
    );
  }
  if (consumer && !sameHex(promise.consumer, consumer)) {
    reject(
      'WRONG_CONSUMER',
      `Wrong consumer: the promise is from ${promise.consumer}, this session serves ${consumer}`,
      'Each consumer pays its own session.',
    );
  }
  const pending = unpaid.find((invoice) => sameHex(invoice.hashlock, promise.hashlock));
  if (!pending) {
    reject(
      'UNKNOWN_HASHLOCK',
      `Unknown hashlock: ${promise.hashlock} is not the hashlock of an unpaid invoice of this session`,
      'Pay the latest invoice; an invoice already paid or superseded by a paid one cannot be paid again.',
    );
  }
  if (promise.agreement.total !== pending.total) {
    reject(
      'WRONG_TOTAL',
      `Wrong total: the promise pays ${promise.agreement.total}, the invoice asked ${pending.total}`,
      'Pay the agreement total the invoice states.',
    );
  }
  return pending;
}

/** Refuses a consumer promise: throws a {@link PromiseRejectedError}. */
export function reject(
  reason: ConstructorParameters<typeof PromiseRejectedError>[0],
  message: string,
  details: string,
): never {
  throw new PromiseRejectedError(reason, message, details);
}

/** `value`, the option `name`, when it is a positive finite number. */
export function positive(name: string, value: number): number {
  if (!(value > 0) || !Number.isFinite(value))
    throw new InvalidOptionError(name, `expected a positive number, got ${value}`);
  return value;
}
