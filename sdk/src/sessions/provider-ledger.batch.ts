import { HubError } from '../hub-client/errors.js';
import type { HubExchangeCoveredResult } from '../hub-client/hub-client.js';
import type { HubExchangeCover } from '../hub-client/schemas.js';
import type { ExchangeRequest, SignedHubPromise } from '../protocol/types.js';
import { HubAnswerRejectedError } from './errors.js';
import { alreadyCredited, checkCover } from './provider-ledger.checks.js';
import { complete } from './provider-ledger.exchange.js';
import type { Inflight, LedgerInternals, ProviderState, QueuedExchange } from './provider-ledger.types.js';

/**
 * Several exchanges of different agreements in one `POST /v1/exchanges`: each is checked before and
 * after as an exchange sent alone is, and the hub answers each as if alone, in order. Returns each
 * one's hub promise or error.
 */
export async function exchangeBatch(
  ledger: LedgerInternals,
  items: QueuedExchange[],
): Promise<(SignedHubPromise | Error)[]> {
  let state = await ledger.open();
  const outcomes: (SignedHubPromise | Error | undefined)[] = items.map(() => undefined);
  // Exchanges sent before whose outcome is unknown go first, identically; a queued promise that is
  // one of them gets its outcome.
  if (state.inflight || state.inflightBatch.length > 0) {
    const earlier = [...state.inflightBatch, ...(state.inflight ? [state.inflight] : [])];
    // A refusal is that exchange's outcome; no answer at all stops here, as for a single exchange.
    const results = state.inflight
      ? [
          await complete(ledger, state.inflight).catch((error: unknown) => {
            if (error instanceof HubError && !error.retryable) return error;
            throw error;
          }),
        ]
      : [];
    const batchResults = await completeBatch(ledger, ledger.state().inflightBatch);
    const all = [...batchResults, ...results];
    items.forEach((item, i) => {
      const at = earlier.findIndex((entry) => entry.request.promise.signature === item.promise.signature.toLowerCase());
      if (at >= 0) outcomes[i] = all[at];
    });
    state = ledger.state();
  }
  if (state.unrevealed) state = await ledger.reveal(state);
  const sending: { index: number; entry: Inflight }[] = [];
  items.forEach((item, i) => {
    if (outcomes[i] !== undefined) return;
    const refusal = alreadyCredited(state, item.promise);
    if (refusal) {
      outcomes[i] = refusal;
      return;
    }
    const request: ExchangeRequest = {
      promise: item.promise,
      encryptedPreimage: ledger.seal(item.preimage),
    };
    const credited = state.credited.get(item.promise.agreement.id.toLowerCase());
    sending.push({
      index: i,
      entry: { request, preimage: item.preimage, expectedTotal: item.promise.agreement.total - credited },
    });
  });
  if (sending.length > 0) {
    await ledger.save({ ...state, inflightBatch: sending.map(({ entry }) => entry) });
    const results = await completeBatch(ledger, ledger.state().inflightBatch);
    sending.forEach(({ index }, k) => {
      outcomes[index] = results[k];
    });
  }
  return outcomes as (SignedHubPromise | Error)[];
}

/** Sends exchanges whose outcome is unknown again, if any, and records what the hub answered. */
export async function settleInflightBatch(ledger: LedgerInternals, state: ProviderState): Promise<ProviderState> {
  if (state.inflightBatch.length === 0) return state;
  await completeBatch(ledger, state.inflightBatch);
  return ledger.state();
}

/**
 * Sends `entries` (stored as `inflightBatch`) in one `POST /v1/exchanges` and records the answers in
 * order. The hub signs only the latest hub promise (`sign: 'latest'`), whose cumulative total covers the
 * other items. Each item's total is checked against the total it must carry (the total so far plus the
 * item's increment over what its agreement was credited); a covered item counts once the hub promise
 * covering it passed its checks, and that promise is its outcome. The latest is stored. No answer keeps
 * the entries to be sent again; a refusal of the whole request forgets them.
 */
export async function completeBatch(
  ledger: LedgerInternals,
  entries: Inflight[],
): Promise<(SignedHubPromise | Error)[]> {
  if (entries.length === 0) return [];
  let results: HubExchangeCoveredResult[];
  try {
    results = await ledger.hub.exchangeMany(
      entries.map((entry) => entry.request),
      { sign: 'latest' },
    );
  } catch (error) {
    if (error instanceof HubError && !error.retryable) await ledger.save({ ...ledger.state(), inflightBatch: [] });
    throw error;
  }
  const state = ledger.state();
  let total = state.latest?.total ?? 0n;
  /** The agreements' totals as the items before credit them, over the stored ones. */
  const agreements = new Map<string, bigint>();
  const checked = results.map((result, i): SignedHubPromise | HubExchangeCover | Error => {
    if (!result.ok) return result.error;
    const { request } = entries[i]!;
    const id = request.promise.agreement.id.toLowerCase();
    const expected = total + request.promise.agreement.total - (agreements.get(id) ?? state.credited.get(id));
    try {
      if (result.covered) checkCover(result.covered, request.promise.hashlock, expected);
      else ledger.checkHubPromise(result.hubPromise, request.promise.hashlock, expected);
    } catch (error) {
      return error as Error;
    }
    total = expected;
    agreements.set(id, request.promise.agreement.total);
    return result.covered ?? result.hubPromise;
  });
  let { latest, latestPreimage } = state;
  const credited: [string, bigint][] = [];
  const outcomes = checked.map((outcome, i): SignedHubPromise | Error => {
    if (outcome instanceof Error) return outcome;
    let hubPromise: SignedHubPromise;
    if ('signature' in outcome) hubPromise = outcome;
    else {
      const cover = checked[outcome.by];
      if (cover instanceof Error) return cover;
      if (!cover || !('signature' in cover) || cover.total < outcome.total) {
        return new HubAnswerRejectedError(
          'WRONG_TOTAL',
          `item ${i} covered by item ${outcome.by}`,
          `a hub promise of a total of at least ${outcome.total}`,
          cover && 'total' in cover ? String(cover.total) : 'none',
          'The promises were not stored. If the hub is right, resynchronise with `ledger.recover()`; otherwise stop using this hub.',
        );
      }
      hubPromise = cover;
    }
    const { request, preimage } = entries[i]!;
    credited.push([request.promise.agreement.id.toLowerCase(), request.promise.agreement.total]);
    if (hubPromise === outcome && (!latest || hubPromise.total >= latest.total)) {
      latest = hubPromise;
      latestPreimage = preimage;
    }
    return hubPromise;
  });
  await ledger.save({
    ...state,
    latest,
    latestPreimage,
    credited: state.credited.withAll(credited),
    inflightBatch: [],
  });
  return outcomes;
}
