import type { Hex } from 'viem';
import { HubError } from '../hub-client/errors.js';
import type { ExchangeRequest, SignedConsumerPromise, SignedHubPromise } from '../protocol/types.js';
import { HubAnswerRejectedError } from './errors.js';
import { settleInflightBatch } from './provider-ledger.batch.js';
import { alreadyCredited } from './provider-ledger.checks.js';
import { recover } from './provider-ledger.recovery.js';
import type { Inflight, LedgerInternals, ProviderState } from './provider-ledger.types.js';
import { sameHex } from './util.js';

/** One exchange, alone: `POST /v1/exchange`. */
export async function exchangeOne(
  ledger: LedgerInternals,
  promise: SignedConsumerPromise,
  preimage: Hex,
): Promise<SignedHubPromise> {
  let state = await ledger.open();
  state = await settleInflightBatch(ledger, state);
  if (state.inflight) {
    if (state.inflight.request.promise.signature === promise.signature.toLowerCase()) {
      return complete(ledger, state.inflight);
    }
    await complete(ledger, state.inflight);
    state = ledger.state();
  }
  const refusal = alreadyCredited(state, promise);
  if (refusal) {
    if (refusal instanceof Error) throw refusal;
    return refusal;
  }
  if (state.unrevealed) state = await ledger.reveal(state);
  const credited = state.credited.get(promise.agreement.id.toLowerCase());
  return send(ledger, state, promise, preimage, credited, true);
}

async function send(
  ledger: LedgerInternals,
  state: ProviderState,
  promise: SignedConsumerPromise,
  preimage: Hex,
  credited: bigint,
  mayResync: boolean,
): Promise<SignedHubPromise> {
  const request: ExchangeRequest = {
    promise,
    encryptedPreimage: ledger.seal(preimage),
    ...(state.unrevealed ? { previousPreimage: state.unrevealed } : {}),
  };
  const inflight: Inflight = {
    request,
    preimage,
    expectedTotal: (state.latest?.total ?? 0n) + promise.agreement.total - credited,
  };
  await ledger.save({ ...state, inflight });
  try {
    return await complete(ledger, inflight);
  } catch (error) {
    if (!mayResync) throw error;
    // Our idea of the previous exchange is behind the hub's (a store restored from a backup): the hub
    // chained this exchange on a higher total than ours. Its latest promise, recovered, is this
    // exchange's; anything else is the refusal it was.
    if (
      error instanceof HubAnswerRejectedError &&
      error.problem === 'WRONG_TOTAL' &&
      BigInt(error.received) > inflight.expectedTotal
    ) {
      const recovered = await recover(ledger);
      if (!recovered || !sameHex(recovered.hubPromise.hashlock, promise.hashlock)) throw error;
      const state = ledger.state();
      const id = promise.agreement.id.toLowerCase();
      await ledger.save({ ...state, credited: state.credited.with(id, promise.agreement.total) });
      return recovered.hubPromise;
    }
    // A hub of an earlier version asks for the previous R first: take its latest promise and R, and
    // try once more.
    if (error instanceof HubError && error.code === 'PREVIOUS_R_NOT_REVEALED') {
      await recover(ledger);
      return send(ledger, ledger.state(), promise, preimage, credited, false);
    }
    throw error;
  }
}

/**
 * Sends an exchange stored as `inflight` and records the hub promise once it is checked; a refusal or a
 * hub promise that fails the checks forgets the exchange, no answer keeps it to be sent again.
 */
export async function complete(ledger: LedgerInternals, inflight: Inflight): Promise<SignedHubPromise> {
  let hubPromise: SignedHubPromise;
  try {
    ({ hubPromise } = await ledger.hub.exchange(inflight.request));
  } catch (error) {
    // A refusal changed nothing at the hub: forget the request. Anything else (no answer, an answer
    // that cannot be read) may have been applied: keep it, to send it again first.
    if (error instanceof HubError && !error.retryable) await ledger.save({ ...ledger.state(), inflight: null });
    throw error;
  }
  const { promise } = inflight.request;
  try {
    ledger.checkHubPromise(hubPromise, promise.hashlock, inflight.expectedTotal);
  } catch (error) {
    await ledger.save({ ...ledger.state(), inflight: null });
    throw error;
  }
  const state = ledger.state();
  const id = promise.agreement.id.toLowerCase();
  const next: ProviderState = {
    ...state,
    latest: hubPromise,
    latestPreimage: inflight.preimage,
    credited: state.credited.with(id, promise.agreement.total),
    inflight: null,
  };
  await ledger.save(next);
  return hubPromise;
}
