import type { Hex } from 'viem';
import { HubError } from '../hub-client/errors.js';
import { hashlockOf } from '../protocol/hash.js';
import { signRecoveryRequest } from '../protocol/sign.js';
import type { SignedHubPromise } from '../protocol/types.js';
import { HubAnswerRejectedError } from './errors.js';
import type { LedgerInternals, ProviderState, Recovered } from './provider-ledger.types.js';
import { sameHex } from './util.js';

/**
 * Asks the hub for the provider's latest hub promise and its R with a signed recovery request, checks
 * them, and makes them the ledger's latest: {@link ProviderLedger.recover}.
 */
export async function recover(ledger: LedgerInternals): Promise<Recovered | null> {
  const info = ledger.info();
  const request = await signRecoveryRequest(ledger.account, {
    hub: info.hub,
    chainId: info.chainId,
    provider: ledger.provider,
    issuedAt: BigInt(Math.floor(ledger.clock() / 1000)),
  });
  let answer: { hubPromise: SignedHubPromise | null; preimage: Hex | null };
  try {
    answer = await ledger.hub.recovery(request);
  } catch (error) {
    if (!(error instanceof HubError && error.code === 'UNKNOWN_PROVIDER')) throw error;
    answer = { hubPromise: null, preimage: null };
  }
  const state = ledger.state();
  if (!answer.hubPromise) {
    await ledger.save({ ...state, inflight: null });
    return null;
  }
  const { hubPromise, preimage } = answer;
  ledger.checkHubPromise(hubPromise, hubPromise.hashlock, undefined);
  if (preimage && !sameHex(hashlockOf(preimage), hubPromise.hashlock)) {
    throw new HubAnswerRejectedError(
      'WRONG_PREIMAGE',
      'a preimage that does not open the hashlock',
      hubPromise.hashlock,
      hashlockOf(preimage),
      'The recovered promise was not stored. Claim with the R you hold, or ask the hub operator.',
    );
  }
  // The exchange that got no answer was applied if the hub's latest promise is its own.
  const applied = state.inflight && sameHex(state.inflight.request.promise.hashlock, hubPromise.hashlock);
  const agreement = state.inflight?.request.promise.agreement;
  const credited =
    applied && agreement ? state.credited.with(agreement.id.toLowerCase(), agreement.total) : state.credited;
  const next: ProviderState = {
    ...state,
    latest: hubPromise,
    latestPreimage: preimage ?? (applied ? state.inflight!.preimage : null),
    // The hub gave R back: it knows it.
    unrevealed: null,
    credited,
    inflight: null,
  };
  await ledger.save(next);
  return { hubPromise, preimage: next.latestPreimage };
}
