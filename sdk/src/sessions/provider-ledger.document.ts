import type { Address } from 'viem';
import { z } from 'zod';
import type { HubServiceInfo } from '../hub-client/schemas.js';
import { encodeMessage, wireSchemas } from '../protocol/codec.js';
import { StoredStateError } from './errors.js';
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
  credited: {},
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

/** The higher total of each agreement in `a` or `b`. */
export function mergeCredited(a: Record<string, bigint>, b: Record<string, bigint>): Record<string, bigint> {
  const merged = { ...a };
  for (const [id, total] of Object.entries(b)) {
    const current = merged[id];
    if (current === undefined || total > current) merged[id] = total;
  }
  return merged;
}

/** The totals of `credited` that differ from `checkpoint`'s. */
export function changedSince(
  credited: Record<string, bigint>,
  checkpoint: Record<string, bigint>,
): Record<string, bigint> {
  const changed: Record<string, bigint> = {};
  for (const [id, total] of Object.entries(credited)) if (checkpoint[id] !== total) changed[id] = total;
  return changed;
}

const encodeCredited = (credited: Record<string, bigint>) =>
  Object.fromEntries(Object.entries(credited).map(([id, total]) => [id, total.toString()]));

/**
 * The document of a {@link ProviderLedger}'s state, as it writes it to its store; `credited` is what it
 * holds of the credited totals (by default all of them; the ledger writes those changed since its
 * checkpoint).
 */
export function encodeProviderState(
  info: HubServiceInfo,
  provider: Address,
  state: ProviderState,
  credited: Record<string, bigint> = state.credited,
): Json {
  return {
    version: 1,
    hub: info.hub,
    chainId: info.chainId,
    provider,
    latest: state.latest ? encodeMessage(state.latest) : null,
    latestPreimage: state.latestPreimage,
    unrevealed: state.unrevealed,
    credited: encodeCredited(credited),
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
 * provider.
 */
export function decodeProviderState(
  key: string,
  info: HubServiceInfo,
  provider: Address,
  stored: z.infer<typeof providerLedgerDocument>,
): ProviderState {
  if (
    stored.hub.toLowerCase() !== info.hub.toLowerCase() ||
    stored.chainId !== info.chainId ||
    stored.provider.toLowerCase() !== provider.toLowerCase()
  ) {
    throw new StoredStateError(key, 'it belongs to another hub, chain or provider');
  }
  const { version: _v, hub: _h, chainId: _c, provider: _p, inflightBatch, ...state } = stored;
  return { ...state, inflightBatch: inflightBatch ?? [] } as ProviderState;
}
