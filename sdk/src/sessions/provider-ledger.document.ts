import type { Address } from 'viem';
import { z } from 'zod';
import type { HubServiceInfo } from '../hub-client/schemas.js';
import { encodeMessage, wireSchemas } from '../protocol/codec.js';
import { StoredStateError } from './errors.js';
import { CreditedTotals } from './provider-ledger.credited.js';
import type { ProviderState } from './provider-ledger.types.js';
import { storedAmount, storedBytes32 } from './state.js';
import type { Json } from './store.js';

const inflightDocument = z.strictObject({
  request: wireSchemas.exchangeRequest,
  preimage: storedBytes32,
  expectedTotal: storedAmount,
});

/** The document a {@link ProviderLedger} keeps in its store (what `chit store export` backs up). */
export const providerLedgerDocument = z.strictObject({
  version: z.literal(1),
  hub: z.string(),
  chainId: z.number(),
  provider: z.string(),
  latest: wireSchemas.hubPromise.nullable(),
  latestPreimage: storedBytes32.nullable(),
  unrevealed: storedBytes32.nullable(),
  credited: z.record(z.string(), storedAmount),
  inflight: inflightDocument.nullable(),
  inflightBatch: z.array(inflightDocument).optional(),
  settledEstimate: storedAmount,
  settlementId: z.string().nullable(),
});

/** The state of a ledger with nothing stored. */
export const emptyState = (): ProviderState => ({
  latest: null,
  latestPreimage: null,
  unrevealed: null,
  credited: CreditedTotals.empty(),
  inflight: null,
  inflightBatch: [],
  settledEstimate: 0n,
  settlementId: null,
});

/**
 * The checkpoint of a ledger's credited totals, at `<key>/credited`: every agreement's total as of a
 * state the ledger's document had already stored. The document's own `credited` holds the totals that
 * changed since; a ledger reads both and takes the higher of each (a credited total only grows).
 */
export const creditedCheckpointDocument = z.strictObject({
  version: z.literal(1),
  credited: z.record(z.string(), storedAmount),
});

/** Where a ledger stored at `key` keeps the checkpoint of its credited totals. */
export const creditedCheckpointKey = (key: string): string => `${key}/credited`;

/** The checkpoint document of `credited`. */
export function encodeCreditedCheckpoint(credited: Record<string, bigint>): Json {
  return { version: 1, credited: encodeCredited(credited) };
}

const encodeCredited = (credited: Record<string, bigint>) =>
  Object.fromEntries(Object.entries(credited).map(([id, total]) => [id, total.toString()]));

/**
 * The document of a {@link ProviderLedger}'s state, as it writes it to its store: of the credited
 * totals, those changed since the checkpoint.
 */
export function encodeProviderState(info: HubServiceInfo, provider: Address, state: ProviderState): Json {
  return {
    version: 1,
    hub: info.hub,
    chainId: info.chainId,
    provider,
    latest: state.latest ? encodeMessage(state.latest) : null,
    latestPreimage: state.latestPreimage,
    unrevealed: state.unrevealed,
    credited: encodeCredited(state.credited.since()),
    inflight: state.inflight
      ? {
          request: encodeMessage(state.inflight.request),
          preimage: state.inflight.preimage,
          expectedTotal: state.inflight.expectedTotal.toString(),
        }
      : null,
    ...(state.inflightBatch.length > 0
      ? {
          inflightBatch: state.inflightBatch.map((entry) => ({
            request: encodeMessage(entry.request),
            preimage: entry.preimage,
            expectedTotal: entry.expectedTotal.toString(),
          })),
        }
      : {}),
    settledEstimate: state.settledEstimate.toString(),
    settlementId: state.settlementId,
  };
}

/**
 * The state in a document read from the store at `key`, which must be the one of this hub, chain and
 * provider, over the credited totals of the `checkpoint` read beside it.
 */
export function decodeProviderState(
  key: string,
  info: HubServiceInfo,
  provider: Address,
  stored: z.infer<typeof providerLedgerDocument>,
  checkpoint: Record<string, bigint>,
): ProviderState {
  if (
    stored.hub.toLowerCase() !== info.hub.toLowerCase() ||
    stored.chainId !== info.chainId ||
    stored.provider.toLowerCase() !== provider.toLowerCase()
  ) {
    throw new StoredStateError(key, 'it belongs to another hub, chain or provider');
  }
  const { version: _v, hub: _h, chainId: _c, provider: _p, inflightBatch, credited, ...state } = stored;
  return {
    ...state,
    credited: CreditedTotals.of(checkpoint, credited),
    inflightBatch: inflightBatch ?? [],
  } as ProviderState;
}
