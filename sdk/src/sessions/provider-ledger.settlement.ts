import type { Address } from 'viem';
import { InvalidOptionError } from '../hub-client/errors.js';
import type { HubJob, HubSettlementQuote } from '../hub-client/schemas.js';
import { signSettlementAuthorization } from '../protocol/sign.js';
import type { LedgerInternals, ProviderState } from './provider-ledger.types.js';
import type { SettlementDecision } from './settlement-policy.js';

/** The statuses of a settlement job still running: {@link ProviderLedger.maybeSettle} waits for it. */
export const RUNNING = new Set(['queued', 'submitted', 'retrying']);

/**
 * Asks the hub for a settlement quote and the policy's decision on it, and keeps what the quote says
 * was settled as the ledger's estimate.
 */
export async function settlementPreview(
  ledger: LedgerInternals,
): Promise<{ quote: HubSettlementQuote; decision: SettlementDecision }> {
  const policy = ledger.settlementPolicy();
  if (!policy) throw new InvalidOptionError('settlementPolicy', 'not set', 'Pass one to the ProviderLedger.');
  const quote = await ledger.hub.settlementQuote(ledger.provider);
  const decision = policy.decide({
    amount: quote.amount,
    hubFee: quote.hubFee,
    relayerFee: quote.relayerFee,
    now: Math.floor(ledger.clock() / 1000),
  });
  const state = ledger.state();
  if (state.latest && state.latest.total >= quote.amount) {
    await ledger.save({ ...state, settledEstimate: state.latest.total - quote.amount });
  }
  return { quote, decision };
}

/** `relayer` is the hub's relayer, from its settlement quote: the authorization is valid only when it submits. */
export async function requestSettlement(
  ledger: LedgerInternals,
  state: ProviderState,
  relayerFee: bigint,
  relayer: Address,
): Promise<HubJob> {
  if (!state.latest) {
    throw new InvalidOptionError('settlement', 'the provider holds no hub promise', 'Nothing to settle yet.');
  }
  const authorization = await signSettlementAuthorization(ledger.account, state.latest, relayerFee, relayer);
  const job = await ledger.hub.requestSettlement({ provider: ledger.provider, relayerFee, authorization });
  await ledger.save({ ...ledger.state(), settlementId: job.id });
  return job;
}
