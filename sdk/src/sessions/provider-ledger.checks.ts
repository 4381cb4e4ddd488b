import type { Address, Hex } from 'viem';
import type { HubExchangeCover, HubServiceInfo } from '../hub-client/schemas.js';
import type { SignedConsumerPromise, SignedHubPromise } from '../protocol/types.js';
import type { Verifier } from '../protocol/verifier.js';
import { verifyHubPromise } from '../protocol/verify.js';
import { HubAnswerRejectedError, PromiseRejectedError } from './errors.js';
import type { ProviderLedgerOptions, ProviderState } from './provider-ledger.types.js';
import { sameHex } from './util.js';

/**
 * Checks the hub's `/v1/info` against what the ledger was told to `expect`.
 *
 * @throws {HubAnswerRejectedError} when it names another hub, chain or operator than expected.
 */
export function checkHubInfo(info: HubServiceInfo, expectation: ProviderLedgerOptions['expect']): void {
  const expect = expectation ?? {};
  if (expect.hub && !sameHex(expect.hub, info.hub)) {
    throw new HubAnswerRejectedError('WRONG_HUB', 'info for another hub', expect.hub, info.hub, 'Check the hub URL.');
  }
  if (expect.chainId !== undefined && expect.chainId !== info.chainId) {
    throw new HubAnswerRejectedError(
      'WRONG_CHAIN',
      'info for another chain',
      String(expect.chainId),
      String(info.chainId),
      'Check the hub URL.',
    );
  }
  if (expect.operator && !sameHex(expect.operator, info.operator)) {
    throw new HubAnswerRejectedError(
      'WRONG_OPERATOR',
      'an operator other than the Hub contract’s',
      expect.operator,
      info.operator,
      'Do not exchange at this hub service: its promises would not be paid on-chain.',
    );
  }
}

const ADVICE =
  'The promise was not stored. If the hub is right, resynchronise with `ledger.recover()`; otherwise stop using this hub.';

/**
 * Checks a hub promise to `provider`: the operator's signature, this hub and chain, the hashlock, and
 * the total when one is expected.
 */
export function checkHubPromise(
  info: HubServiceInfo,
  provider: Address,
  verifier: Verifier,
  hubPromise: SignedHubPromise,
  hashlock: Hex,
  expectedTotal: bigint | undefined,
): void {
  if (!sameHex(hubPromise.hub, info.hub) || hubPromise.chainId !== info.chainId) {
    throw new HubAnswerRejectedError(
      hubPromise.chainId !== info.chainId ? 'WRONG_CHAIN' : 'WRONG_HUB',
      'a hub promise for another hub or chain',
      `${info.hub} on ${info.chainId}`,
      `${hubPromise.hub} on ${hubPromise.chainId}`,
      ADVICE,
    );
  }
  if (!sameHex(hubPromise.provider, provider)) {
    throw new HubAnswerRejectedError(
      'WRONG_PROVIDER',
      'a hub promise to another provider',
      provider,
      hubPromise.provider,
      ADVICE,
    );
  }
  requireHashlock('a hub promise', hubPromise.hashlock, hashlock);
  if (!verifyHubPromise(hubPromise, info.operator, verifier)) {
    throw new HubAnswerRejectedError(
      'INVALID_SIGNATURE',
      'a hub promise not signed by the operator',
      info.operator,
      hubPromise.signature,
      ADVICE,
    );
  }
  if (expectedTotal !== undefined) requireTotal('a hub promise', hubPromise.total, expectedTotal);
}

/**
 * Checks what the hub says it credited for an exchange whose hub promise it did not sign, another item's
 * covering it (`sign: 'latest'`): the hashlock and the total.
 */
export function checkCover(cover: HubExchangeCover, hashlock: Hex, expectedTotal: bigint): void {
  requireHashlock('a credit', cover.hashlock, hashlock);
  requireTotal('a credit', cover.total, expectedTotal);
}

function requireHashlock(what: string, got: Hex, hashlock: Hex): void {
  if (!sameHex(got, hashlock)) {
    throw new HubAnswerRejectedError('WRONG_HASHLOCK', `${what} with another hashlock`, hashlock, got, ADVICE);
  }
}

function requireTotal(what: string, got: bigint, expected: bigint): void {
  if (got !== expected) {
    throw new HubAnswerRejectedError(
      'WRONG_TOTAL',
      `${what} with the wrong total`,
      `${expected} (previous total + increment)`,
      String(got),
      ADVICE,
    );
  }
}

/**
 * What an exchange of `promise` needs no hub for: the latest hub promise when it is the one already
 * received for it, a NOTHING_NEW refusal when its agreement total was credited already, else undefined.
 */
export function alreadyCredited(
  state: ProviderState,
  promise: SignedConsumerPromise,
): SignedHubPromise | Error | undefined {
  const id = promise.agreement.id.toLowerCase();
  const credited = state.credited.get(id);
  if (promise.agreement.total > credited) return undefined;
  if (state.latest && sameHex(state.latest.hashlock, promise.hashlock)) return state.latest;
  return new PromiseRejectedError(
    'NOTHING_NEW',
    `Nothing new: the hub credited ${credited} for agreement ${id} already`,
    'Ask the consumer to pay the latest invoice.',
  );
}
