import { HubError } from '../hub-client/errors.js';
import type { HubExchangeResult } from '../hub-client/hub-client.js';
import type { ExchangeRequest, SignedHubPromise } from '../protocol/types.js';
import { alreadyCredited } from './provider-ledger.checks.js';
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
    const credited = state.credited[item.promise.agreement.id.toLowerCase()] ?? 0n;
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
 * order: each hub promise is checked against the total it must carry (the latest total plus the
 * item's increment over what its agreement was credited), and stored as the latest. No answer keeps the entries to be sent again; a refusal of the whole request forgets them.
 */
export async function completeBatch(
  ledger: LedgerInternals,
  entries: Inflight[],
): Promise<(SignedHubPromise | Error)[]> {
  if (entries.length === 0) return [];
  let results: HubExchangeResult[];
  try {
    results = await ledger.hub.exchangeMany(entries.map((entry) => entry.request));
  } catch (error) {
    if (error instanceof HubError && !error.retryable) await ledger.save({ ...ledger.state(), inflightBatch: [] });
    throw error;
  }
  const state = ledger.state();
  let { latest, latestPreimage } = state;
  const credited = { ...state.credited };
  const outcomes = results.map((result, i): SignedHubPromise | Error => {
    if (!result.ok) return result.error;
    const { request, preimage } = entries[i]!;
    const id = request.promise.agreement.id.toLowerCase();
    const expected = (latest?.total ?? 0n) + request.promise.agreement.total - (credited[id] ?? 0n);
    try {
      ledger.checkHubPromise(result.hubPromise, request.promise.hashlock, expected);
    } catch (error) {
      return error as Error;
    }
    latest = result.hubPromise;
    latestPreimage = preimage;
    credited[id] = request.promise.agreement.total;
    return result.hubPromise;
  });
  const next: ProviderState = {
    ...state,
    latest,
    latestPreimage,
    credited,
    inflightBatch: [],
  };
  await ledger.save(next);
  return outcomes;
}
