import { type Address, getAddress, type Hex } from 'viem';
import { HubError, InvalidOptionError } from '../hub-client/errors.js';
import { type HubClient, maxExchangesPerRequest } from '../hub-client/hub-client.js';
import type { HubJob, HubServiceInfo, HubSettlementQuote } from '../hub-client/schemas.js';
import { hashlockOf } from '../protocol/hash.js';
import { preimageSealer } from '../protocol/preimage-box.js';
import type { TypedDataSigner } from '../protocol/sign.js';
import type { SignedConsumerPromise, SignedHubPromise } from '../protocol/types.js';
import { jsVerifier, type Verifier } from '../protocol/verifier.js';
import { Mutex } from './mutex.js';
import { exchangeBatch } from './provider-ledger.batch.js';
import { checkHubInfo, checkHubPromise } from './provider-ledger.checks.js';
import { CreditedTotals } from './provider-ledger.credited.js';
import {
  creditedCheckpointDocument,
  creditedCheckpointKey,
  decodeProviderState,
  emptyState,
  encodeCreditedCheckpoint,
  encodeProviderState,
  providerLedgerDocument,
} from './provider-ledger.document.js';
import { exchangeOne } from './provider-ledger.exchange.js';
import { recover } from './provider-ledger.recovery.js';
import { RUNNING, requestSettlement, settlementPreview } from './provider-ledger.settlement.js';
import type {
  LedgerInternals,
  ProviderLedgerOptions,
  ProviderState,
  QueuedExchange,
  Recovered,
  SettlementAttempt,
} from './provider-ledger.types.js';
import type { SettlementDecision } from './settlement-policy.js';
import { readState } from './state.js';
import { MemoryStore, type Store } from './store.js';
import { sameHex } from './util.js';

export {
  creditedCheckpointDocument,
  creditedCheckpointKey,
  providerLedgerDocument,
} from './provider-ledger.document.js';
export type { ProviderLedgerOptions, Recovered, SettlementAttempt } from './provider-ledger.types.js';

/**
 * A provider's books at one hub, shared by all its {@link ProviderSession}s there. The hub chains a
 * provider's exchanges (each hub promise total is the previous one plus the increment), so the ledger
 * runs them in order, one request at a time:
 *
 * 1. it encrypts R to the hub's public key, writes the request to the store, and sends it;
 * 2. it checks the hub promise: the operator's signature, this hub, chain and provider, the consumer
 *    promise's hashlock, and a total equal to the previous total plus the agreement's increment;
 * 3. it stores the hub promise. R needs no reveal: the hub opened it from its box before it signed.
 *
 * An exchange whose outcome is unknown (no answer) is sent again, byte for byte, before any other:
 * the hub answers a repeat with the same hub promise. A provider that lost its store gets its latest
 * promise and R back with a signed recovery request, automatically when the ledger opens on an empty
 * store. Earnings are never lost to lost state.
 *
 * @example
 * const ledger = new ProviderLedger({ hub: new HubClient({ url }), account, store, expect: { operator } });
 * const session = new ProviderSession({ ledger, consumer, prices, send: (invoice) => peer.send(invoice) });
 */
export class ProviderLedger {
  readonly hub: HubClient;
  readonly provider: Address;
  readonly #account: TypedDataSigner;
  readonly #store: Store;
  readonly #options: ProviderLedgerOptions;
  readonly #verifier: Verifier;
  readonly #clock: () => number;
  readonly #mutex = new Mutex();
  /** Exchanges waiting for the ledger: sent by {@link ProviderLedger.#drain}, together when there are several. */
  #queue: QueuedExchange[] = [];
  #info: HubServiceInfo | undefined;
  #sealer: ((preimage: Hex) => Hex) | undefined;
  #key: string | undefined;
  #state: ProviderState | undefined;
  #lastSettlementCheck = Number.NEGATIVE_INFINITY;
  /** What the ledger's parts in other modules (exchanges, batches, recovery, settlement) work with. */
  readonly #internals: LedgerInternals;

  constructor(options: ProviderLedgerOptions) {
    this.hub = options.hub;
    this.provider = getAddress(options.account.address);
    this.#account = options.account;
    this.#store = options.store ?? new MemoryStore();
    this.#options = options;
    this.#verifier = options.verifier ?? jsVerifier;
    this.#clock = options.clock ?? Date.now;
    this.#internals = {
      hub: this.hub,
      provider: this.provider,
      account: this.#account,
      clock: this.#clock,
      settlementPolicy: () => this.#options.settlementPolicy,
      info: () => this.info,
      state: () => this.#state!,
      open: () => this.#open(),
      save: (state) => this.#save(state),
      seal: (preimage) => this.#seal(preimage),
      reveal: (state) => this.#reveal(state),
      checkHubPromise: (hubPromise, hashlock, expectedTotal) =>
        checkHubPromise(this.info, this.provider, this.#verifier, hubPromise, hashlock, expectedTotal),
    };
  }

  /** The signature checker this ledger was given (`jsVerifier` by default), for its users' own checks. */
  get verifier(): Verifier {
    return this.#verifier;
  }

  /** Whether a settlement policy was given. */
  get hasSettlementPolicy(): boolean {
    return this.#options.settlementPolicy !== undefined;
  }

  /** The store the ledger and its sessions write to. */
  get store(): Store {
    return this.#store;
  }

  /**
   * The hub's `/v1/info`, once the ledger is open.
   *
   * @example
   * await ledger.open();
   * console.log(ledger.info.fee);
   */
  get info(): HubServiceInfo {
    if (!this.#info) throw new InvalidOptionError('ledger', 'not open yet', 'Call `await ledger.open()` first.');
    return this.#info;
  }

  /** The key of the ledger's document in the store, once open. */
  get key(): string {
    if (!this.#key) throw new InvalidOptionError('ledger', 'not open yet', 'Call `await ledger.open()` first.');
    return this.#key;
  }

  /**
   * Reads `/v1/info` (checking it against `expect`), loads the stored state, and recovers from the hub
   * when the store is empty (unless `recoverOnEmptyStore` is false). Idempotent; every other method
   * opens the ledger first.
   *
   * @throws {HubAnswerRejectedError} when `/v1/info` names another hub, chain or operator than expected.
   * @example
   * await ledger.open();
   */
  open(): Promise<void> {
    return this.#mutex.run(async () => {
      await this.#open();
    });
  }

  /**
   * The latest hub promise the provider holds, and its R.
   *
   * @example
   * const { hubPromise, preimage } = await ledger.latest();
   */
  latest(): Promise<{ hubPromise: SignedHubPromise | null; preimage: Hex | null }> {
    return this.#mutex.run(async () => {
      const state = await this.#open();
      return { hubPromise: state.latest, preimage: state.latestPreimage };
    });
  }

  /**
   * The highest agreement total the hub credited for an agreement of this provider (0 when none).
   *
   * @example
   * const paid = await ledger.credited(agreementId);
   */
  credited(agreementId: Hex): Promise<bigint> {
    return this.#mutex.run(async () => (await this.#open()).credited.get(agreementId.toLowerCase()));
  }

  /**
   * Exchanges a consumer promise at the hub for a hub promise, checks it, stores it, and reveals R (see
   * the class description). The caller checked the consumer promise against its invoice;
   * {@link ProviderSession} does. Exchanges asked for while one is at the hub wait, and then go
   * together in one `POST /v1/exchanges` (one per agreement, up to {@link maxExchangesPerRequest}),
   * each checked and answered as if alone: a provider serving many consumers at once makes one round
   * trip for all of them. The hub signs one hub promise for such a request (`sign: 'latest'`): it is the
   * one each of them resolves with, its cumulative total covering them all, so its hashlock is that of
   * the last exchange of the request rather than this one's.
   *
   * @throws {HubError} the hub's refusal (`OVERSPEND`, `PROMISE_TOO_LOW`, ...): nothing changed.
   * @throws {HubUnreachableError | HubTimeoutError} no answer: the request is kept and sent again first.
   * @throws {HubAnswerRejectedError} a hub promise that is not what the protocol requires.
   * @throws {PromiseRejectedError} `NOTHING_NEW` when the hub already credited this agreement total.
   * @example
   * const hubPromise = await ledger.exchange(promise, preimage);
   */
  exchange(promise: SignedConsumerPromise, preimage: Hex): Promise<SignedHubPromise> {
    if (!sameHex(hashlockOf(preimage), promise.hashlock)) {
      return Promise.reject(new InvalidOptionError('preimage', `it is not the R of hashlock ${promise.hashlock}`));
    }
    return new Promise<SignedHubPromise>((resolve, reject) => {
      this.#queue.push({ promise, preimage, resolve, reject });
      if (this.#queue.length === 1) void this.#mutex.run(() => this.#drain());
    });
  }

  /**
   * Asks the hub for the provider's latest hub promise and its R with a signed recovery request, checks
   * them, and makes them the ledger's latest. Needed after the store was lost; {@link open} does it on
   * an empty store.
   *
   * @returns `null` when the hub holds no promise for the provider.
   * @throws {HubError} `STALE_REQUEST` when the clock is more than five minutes off the hub's.
   * @throws {HubAnswerRejectedError} a promise not signed by the operator, or an R that does not open it.
   * @example
   * const recovered = await ledger.recover();
   */
  recover(): Promise<Recovered | null> {
    return this.#mutex.run(async () => {
      await this.#open();
      return recover(this.#internals);
    });
  }

  /**
   * Asks the hub for a settlement quote and what the policy makes of it: the fee to show before
   * settling.
   *
   * @example
   * const { quote, decision } = await ledger.settlementPreview();
   * console.log(`settling ${decision.amount} costs ${decision.fee}`);
   */
  settlementPreview(): Promise<{ quote: HubSettlementQuote; decision: SettlementDecision }> {
    return this.#mutex.run(async () => {
      await this.#open();
      return settlementPreview(this.#internals);
    });
  }

  /**
   * Requests a settlement of the latest hub promise through the hub's relayer, paying it `relayerFee`
   * (the quote's), whatever the policy says. The authorization names the relayer of the hub's settlement
   * quote, the only account that can then submit it.
   *
   * @example
   * const { quote } = await ledger.settlementPreview();
   * const job = await ledger.settle(quote.relayerFee);
   */
  settle(relayerFee: bigint): Promise<HubJob> {
    return this.#mutex.run(async () => {
      const state = await this.#open();
      const { relayer } = await this.hub.settlementQuote(this.provider);
      return requestSettlement(this.#internals, state, relayerFee, relayer);
    });
  }

  /**
   * Settles when the policy says so: skips while a settlement it requested is still running, asks for a
   * quote only when the unsettled estimate reaches the threshold (or the deadline is near), and requests
   * a settlement when the decision is to settle. Calls within `settlementCheckMs` of the last one do
   * nothing unless `force` is set, so sessions can call it on every tick.
   *
   * @example
   * setInterval(() => ledger.maybeSettle().catch(console.error), 60_000);
   */
  maybeSettle(options: { force?: boolean } = {}): Promise<SettlementAttempt> {
    return this.#mutex.run(async () => {
      const policy = this.#options.settlementPolicy;
      if (!policy) throw new InvalidOptionError('settlementPolicy', 'not set', 'Pass one to the ProviderLedger.');
      const now = this.#clock();
      if (!options.force && now - this.#lastSettlementCheck < (this.#options.settlementCheckMs ?? 60_000)) {
        return { throttled: true };
      }
      this.#lastSettlementCheck = now;
      let state = await this.#open();
      if (state.settlementId) {
        const pending = await this.hub.settlement(state.settlementId);
        if (RUNNING.has(pending.status)) return { pending };
        state = { ...state, settlementId: null };
        await this.#save(state);
      }
      if (!state.latest) return {};
      const estimate = state.latest.total - state.settledEstimate;
      if (!policy.worthQuoting(estimate, Math.floor(this.#clock() / 1000))) return {};
      const { quote, decision } = await settlementPreview(this.#internals);
      if (!decision.settle) return { quote, decision };
      const job = await requestSettlement(this.#internals, this.#state!, quote.relayerFee, quote.relayer);
      return { quote, decision, job };
    });
  }

  async #open(): Promise<ProviderState> {
    if (this.#state) return this.#state;
    const info = await this.hub.info();
    checkHubInfo(info, this.#options.expect);
    this.#info = info;
    this.#key =
      this.#options.key ?? `chit/provider/${info.chainId}/${info.hub.toLowerCase()}/${this.provider.toLowerCase()}`;
    const stored = await readState(this.#store, this.#key, providerLedgerDocument);
    const checkpoint =
      (await readState(this.#store, creditedCheckpointKey(this.#key), creditedCheckpointDocument))?.credited ?? {};
    if (stored) {
      this.#state = decodeProviderState(this.#key, info, this.provider, stored, checkpoint);
      return this.#state;
    }
    this.#state = { ...emptyState(), credited: CreditedTotals.of(checkpoint, {}) };
    try {
      if (this.#options.recoverOnEmptyStore ?? true) await recover(this.#internals);
      else await this.#save(this.#state);
    } catch (error) {
      this.#state = undefined; // not open: the next call tries again
      throw error;
    }
    return this.#state;
  }

  /**
   * Sends the queued exchanges (inside the ledger's lock): alone as before when there is one, else up
   * to {@link maxExchangesPerRequest} of them together, one per agreement (a second promise of an
   * agreement waits for the next round, whose credited total it depends on).
   */
  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch: QueuedExchange[] = [];
      const agreements = new Set<string>();
      this.#queue = this.#queue.filter((item) => {
        const id = item.promise.agreement.id.toLowerCase();
        if (batch.length >= maxExchangesPerRequest || agreements.has(id)) return true;
        agreements.add(id);
        batch.push(item);
        return false;
      });
      if (batch.length === 1) {
        const [item] = batch as [QueuedExchange];
        await exchangeOne(this.#internals, item.promise, item.preimage).then(item.resolve, item.reject);
        continue;
      }
      try {
        const outcomes = await exchangeBatch(this.#internals, batch);
        outcomes.forEach((outcome, i) => {
          if (outcome instanceof Error) batch[i]!.reject(outcome);
          else batch[i]!.resolve(outcome);
        });
      } catch (error) {
        for (const item of batch) item.reject(error);
      }
    }
  }

  /** R sealed to the hub's public key (`encryptedPreimage`). */
  #seal(preimage: Hex): Hex {
    const publicKey = this.info.publicKey;
    this.#sealer ??= this.#options.preimageSealer ? this.#options.preimageSealer(publicKey) : preimageSealer(publicKey);
    return this.#sealer(preimage);
  }

  /** Tells the hub the R it has not acknowledged yet; on failure it goes with the next exchange. */
  async #reveal(state: ProviderState): Promise<ProviderState> {
    const preimage = state.unrevealed;
    if (!preimage) return state;
    try {
      const info = this.info;
      await this.hub.reveal({ hub: info.hub, chainId: info.chainId, provider: this.provider, preimage });
    } catch (error) {
      // UNKNOWN_PREIMAGE: the hub has no exchange with this hashlock, so it does not need this R.
      if (!(error instanceof HubError && error.code === 'UNKNOWN_PREIMAGE')) return state;
    }
    const next = { ...this.#state!, unrevealed: null };
    await this.#save(next);
    return next;
  }

  /**
   * Stores `state`: its document holds the credited totals changed since the checkpoint. When they are
   * more than `creditedJournal`, the checkpoint is written first with the totals of the state stored
   * last (never ahead of the document: a crash between the two writes reads back that state). Only
   * that write goes through every agreement; a save otherwise costs the totals since the checkpoint.
   */
  async #save(next: ProviderState): Promise<void> {
    let state = next;
    const stored = this.#state;
    if (stored && state.credited.sinceCount > (this.#options.creditedJournal ?? 512)) {
      const checkpoint = stored.credited.folded();
      await this.#store.put(creditedCheckpointKey(this.key), encodeCreditedCheckpoint(checkpoint.all()));
      state = { ...state, credited: state.credited.rebasedOn(checkpoint) };
    }
    await this.#store.put(this.key, encodeProviderState(this.info, this.provider, state));
    this.#state = state;
  }
}
