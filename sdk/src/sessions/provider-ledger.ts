import { type Address, getAddress, type Hex } from 'viem';
import { z } from 'zod';
import { HubError, InvalidOptionError } from '../hub-client/errors.js';
import { type HubClient, type HubExchangeResult, maxExchangesPerRequest } from '../hub-client/hub-client.js';
import type { HubJob, HubServiceInfo, HubSettlement, HubSettlementQuote } from '../hub-client/schemas.js';
import { encodeMessage, wireSchemas } from '../protocol/codec.js';
import { hashlockOf } from '../protocol/hash.js';
import { sealPreimage } from '../protocol/preimage-box.js';
import { signRecoveryRequest, signSettlementAuthorization, type TypedDataSigner } from '../protocol/sign.js';
import type { ExchangeRequest, SignedConsumerPromise, SignedHubPromise } from '../protocol/types.js';
import { jsVerifier, type Verifier } from '../protocol/verifier.js';
import { verifyHubPromise } from '../protocol/verify.js';
import { HubAnswerRejectedError, PromiseRejectedError, StoredStateError } from './errors.js';
import { Mutex } from './mutex.js';
import type { SettlementDecision, SettlementPolicy } from './settlement-policy.js';
import { readState, storedAmount, storedBytes32 } from './state.js';
import { type Json, MemoryStore, type Store } from './store.js';
import { sameHex } from './util.js';

/** Options of a {@link ProviderLedger}. */
export interface ProviderLedgerOptions {
  /** The client of the hub the provider exchanges at. */
  hub: HubClient;
  /** The provider's identity key: a viem LocalAccount, or anything with its address that signs typed data. */
  account: TypedDataSigner & { address: Address };
  /** Where the ledger keeps its state and the sessions their preimages. Default: in memory. */
  store?: Store;
  /** The key of the ledger's document. Default `chit/provider/<chainId>/<hub>/<provider>`. */
  key?: string;
  /**
   * What `/v1/info` must say, checked when the ledger opens. Pin `operator` to the one the Hub
   * contract names (read it on-chain): hub promises are checked against the operator, and a hub
   * service could otherwise name any key.
   */
  expect?: { hub?: Address; chainId?: number; operator?: Address };
  /** Checks hub signatures. Default: the JavaScript verifier (`nativeVerifier()` of `@chit/sdk/node` is faster). */
  verifier?: Verifier;
  /**
   * Seals R to the hub's public key for each exchange. Default: `sealPreimage` in JavaScript;
   * `nativePreimageSealer` of `@chit/sdk/node` does it about 30 times faster.
   */
  preimageSealer?: (hubPublicKey: Hex) => (preimage: Hex) => Hex;
  /** Milliseconds since the epoch; `Date.now` by default. Used for recovery requests and deadlines. */
  clock?: () => number;
  /**
   * On an empty store, ask the hub for the latest promise and its R (a signed recovery request) before
   * the first exchange, so that a provider that lost its store continues from the hub's total.
   * Default true.
   */
  recoverOnEmptyStore?: boolean;
  /** When to settle; {@link ProviderLedger.maybeSettle} needs one. */
  settlementPolicy?: SettlementPolicy;
  /** {@link ProviderLedger.maybeSettle} does nothing when called again within this time. Default 60 s. */
  settlementCheckMs?: number;
}

/** What a recovery gave back. */
export interface Recovered {
  hubPromise: SignedHubPromise;
  preimage: Hex | null;
}

/** What {@link ProviderLedger.maybeSettle} did. */
export interface SettlementAttempt {
  /** The policy's decision, when a quote was asked for. */
  decision?: SettlementDecision;
  quote?: HubSettlementQuote;
  /** The settlement requested, when the decision was to settle. */
  job?: HubJob;
  /** A settlement requested before and still running: nothing else was done. */
  pending?: HubSettlement;
  /** True when the last check was less than `settlementCheckMs` ago: nothing was done. */
  throttled?: true;
}

interface Inflight {
  request: ExchangeRequest;
  preimage: Hex;
  expectedTotal: bigint;
}

interface QueuedExchange {
  promise: SignedConsumerPromise;
  preimage: Hex;
  resolve(hubPromise: SignedHubPromise): void;
  reject(error: unknown): void;
}

interface ProviderState {
  latest: SignedHubPromise | null;
  latestPreimage: Hex | null;
  /**
   * An R the hub may not know, left by a version of this ledger that revealed R after each exchange;
   * revealed (or sent as `previousPreimage`) before the next exchange. Exchanges now carry R in their
   * box, which the hub opens before it signs, so nothing new is ever left here.
   */
  unrevealed: Hex | null;
  /** The highest agreement total the hub credited, by agreement id. */
  credited: Record<string, bigint>;
  /** An exchange sent whose outcome is not known yet: it is sent again, identically, before any other. */
  inflight: Inflight | null;
  /** The same for exchanges sent together (`POST /v1/exchanges`): sent again, identically, before any other. */
  inflightBatch: Inflight[];
  /** What the hub settled, as last learned from a quote. */
  settledEstimate: bigint;
  settlementId: string | null;
}

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

const emptyState = (): ProviderState => ({
  latest: null,
  latestPreimage: null,
  unrevealed: null,
  credited: {},
  inflight: null,
  inflightBatch: [],
  settledEstimate: 0n,
  settlementId: null,
});

const RUNNING = new Set(['queued', 'submitted', 'retrying']);

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

  constructor(options: ProviderLedgerOptions) {
    this.hub = options.hub;
    this.provider = getAddress(options.account.address);
    this.#account = options.account;
    this.#store = options.store ?? new MemoryStore();
    this.#options = options;
    this.#verifier = options.verifier ?? jsVerifier;
    this.#clock = options.clock ?? Date.now;
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
    return this.#mutex.run(async () => (await this.#open()).credited[agreementId.toLowerCase()] ?? 0n);
  }

  /**
   * Exchanges a consumer promise at the hub for a hub promise, checks it, stores it, and reveals R (see
   * the class description). The caller checked the consumer promise against its invoice;
   * {@link ProviderSession} does. Exchanges asked for while one is at the hub wait, and then go
   * together in one `POST /v1/exchanges` (one per agreement, up to {@link maxExchangesPerRequest}),
   * each checked and answered as if alone: a provider serving many consumers at once makes one round
   * trip for all of them.
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
      return this.#recover();
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
      return this.#preview();
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
      return this.#settle(state, relayerFee, relayer);
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
      const { quote, decision } = await this.#preview();
      if (!decision.settle) return { quote, decision };
      const job = await this.#settle(this.#state!, quote.relayerFee, quote.relayer);
      return { quote, decision, job };
    });
  }

  async #open(): Promise<ProviderState> {
    if (this.#state) return this.#state;
    const info = await this.hub.info();
    const expect = this.#options.expect ?? {};
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
    this.#info = info;
    this.#key =
      this.#options.key ?? `chit/provider/${info.chainId}/${info.hub.toLowerCase()}/${this.provider.toLowerCase()}`;
    const stored = await readState(this.#store, this.#key, providerLedgerDocument);
    if (stored) {
      if (
        stored.hub.toLowerCase() !== info.hub.toLowerCase() ||
        stored.chainId !== info.chainId ||
        stored.provider.toLowerCase() !== this.provider.toLowerCase()
      ) {
        throw new StoredStateError(this.#key, 'it belongs to another hub, chain or provider');
      }
      const { version: _v, hub: _h, chainId: _c, provider: _p, inflightBatch, ...state } = stored;
      this.#state = { ...state, inflightBatch: inflightBatch ?? [] } as ProviderState;
      return this.#state;
    }
    this.#state = emptyState();
    try {
      if (this.#options.recoverOnEmptyStore ?? true) await this.#recover();
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
        await this.#exchangeOne(item.promise, item.preimage).then(item.resolve, item.reject);
        continue;
      }
      try {
        const outcomes = await this.#exchangeBatch(batch);
        outcomes.forEach((outcome, i) => {
          if (outcome instanceof Error) batch[i]!.reject(outcome);
          else batch[i]!.resolve(outcome);
        });
      } catch (error) {
        for (const item of batch) item.reject(error);
      }
    }
  }

  /** One exchange, alone: `POST /v1/exchange`. */
  async #exchangeOne(promise: SignedConsumerPromise, preimage: Hex): Promise<SignedHubPromise> {
    let state = await this.#open();
    state = await this.#settleInflightBatch(state);
    if (state.inflight) {
      if (state.inflight.request.promise.signature === promise.signature.toLowerCase()) {
        return this.#complete(state.inflight);
      }
      await this.#complete(state.inflight);
      state = this.#state!;
    }
    const refusal = this.#alreadyCredited(state, promise);
    if (refusal) {
      if (refusal instanceof Error) throw refusal;
      return refusal;
    }
    if (state.unrevealed) state = await this.#reveal(state);
    const credited = state.credited[promise.agreement.id.toLowerCase()] ?? 0n;
    return this.#send(state, promise, preimage, credited, true);
  }

  /**
   * Several exchanges of different agreements in one `POST /v1/exchanges`: each is checked before and
   * after as {@link #exchangeOne} checks it, and the hub answers each as if alone, in order. Returns each
   * one's hub promise or error.
   */
  async #exchangeBatch(items: QueuedExchange[]): Promise<(SignedHubPromise | Error)[]> {
    let state = await this.#open();
    const outcomes: (SignedHubPromise | Error | undefined)[] = items.map(() => undefined);
    // Exchanges sent before whose outcome is unknown go first, identically; a queued promise that is
    // one of them gets its outcome.
    if (state.inflight || state.inflightBatch.length > 0) {
      const earlier = [...state.inflightBatch, ...(state.inflight ? [state.inflight] : [])];
      // A refusal is that exchange's outcome; no answer at all stops here, as for a single exchange.
      const results = state.inflight
        ? [
            await this.#complete(state.inflight).catch((error: unknown) => {
              if (error instanceof HubError && !error.retryable) return error;
              throw error;
            }),
          ]
        : [];
      const batchResults = await this.#completeBatch(this.#state!.inflightBatch);
      const all = [...batchResults, ...results];
      items.forEach((item, i) => {
        const at = earlier.findIndex(
          (entry) => entry.request.promise.signature === item.promise.signature.toLowerCase(),
        );
        if (at >= 0) outcomes[i] = all[at];
      });
      state = this.#state!;
    }
    if (state.unrevealed) state = await this.#reveal(state);
    const sending: { index: number; entry: Inflight }[] = [];
    items.forEach((item, i) => {
      if (outcomes[i] !== undefined) return;
      const refusal = this.#alreadyCredited(state, item.promise);
      if (refusal) {
        outcomes[i] = refusal;
        return;
      }
      const request: ExchangeRequest = {
        promise: item.promise,
        encryptedPreimage: this.#seal(item.preimage),
      };
      const credited = state.credited[item.promise.agreement.id.toLowerCase()] ?? 0n;
      sending.push({
        index: i,
        entry: { request, preimage: item.preimage, expectedTotal: item.promise.agreement.total - credited },
      });
    });
    if (sending.length > 0) {
      await this.#save({ ...state, inflightBatch: sending.map(({ entry }) => entry) });
      const results = await this.#completeBatch(this.#state!.inflightBatch);
      sending.forEach(({ index }, k) => {
        outcomes[index] = results[k];
      });
    }
    return outcomes as (SignedHubPromise | Error)[];
  }

  /** Sends exchanges whose outcome is unknown again, if any, and records what the hub answered. */
  async #settleInflightBatch(state: ProviderState): Promise<ProviderState> {
    if (state.inflightBatch.length === 0) return state;
    await this.#completeBatch(state.inflightBatch);
    return this.#state!;
  }

  /**
   * Sends `entries` (stored as `inflightBatch`) in one `POST /v1/exchanges` and records the answers in
   * order: each hub promise is checked against the total it must carry (the latest total plus the
   * item's increment over what its agreement was credited), and stored as the latest. No answer keeps the entries to be sent again; a refusal of the whole request forgets them.
   */
  async #completeBatch(entries: Inflight[]): Promise<(SignedHubPromise | Error)[]> {
    if (entries.length === 0) return [];
    let results: HubExchangeResult[];
    try {
      results = await this.hub.exchangeMany(entries.map((entry) => entry.request));
    } catch (error) {
      if (error instanceof HubError && !error.retryable) await this.#save({ ...this.#state!, inflightBatch: [] });
      throw error;
    }
    const state = this.#state!;
    let { latest, latestPreimage } = state;
    const credited = { ...state.credited };
    const outcomes = results.map((result, i): SignedHubPromise | Error => {
      if (!result.ok) return result.error;
      const { request, preimage } = entries[i]!;
      const id = request.promise.agreement.id.toLowerCase();
      const expected = (latest?.total ?? 0n) + request.promise.agreement.total - (credited[id] ?? 0n);
      try {
        this.#checkHubPromise(result.hubPromise, request.promise.hashlock, expected);
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
    await this.#save(next);
    return outcomes;
  }

  /**
   * What an exchange of `promise` needs no hub for: the latest hub promise when it is the one already
   * received for it, a NOTHING_NEW refusal when its agreement total was credited already, else undefined.
   */
  #alreadyCredited(state: ProviderState, promise: SignedConsumerPromise): SignedHubPromise | Error | undefined {
    const id = promise.agreement.id.toLowerCase();
    const credited = state.credited[id] ?? 0n;
    if (promise.agreement.total > credited) return undefined;
    if (state.latest && sameHex(state.latest.hashlock, promise.hashlock)) return state.latest;
    return new PromiseRejectedError(
      'NOTHING_NEW',
      `Nothing new: the hub credited ${credited} for agreement ${id} already`,
      'Ask the consumer to pay the latest invoice.',
    );
  }

  async #send(
    state: ProviderState,
    promise: SignedConsumerPromise,
    preimage: Hex,
    credited: bigint,
    mayResync: boolean,
  ): Promise<SignedHubPromise> {
    const request: ExchangeRequest = {
      promise,
      encryptedPreimage: this.#seal(preimage),
      ...(state.unrevealed ? { previousPreimage: state.unrevealed } : {}),
    };
    const inflight: Inflight = {
      request,
      preimage,
      expectedTotal: (state.latest?.total ?? 0n) + promise.agreement.total - credited,
    };
    await this.#save({ ...state, inflight });
    try {
      return await this.#complete(inflight);
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
        const recovered = await this.#recover();
        if (!recovered || !sameHex(recovered.hubPromise.hashlock, promise.hashlock)) throw error;
        const state = this.#state!;
        const id = promise.agreement.id.toLowerCase();
        await this.#save({ ...state, credited: { ...state.credited, [id]: promise.agreement.total } });
        return recovered.hubPromise;
      }
      // A hub of an earlier version asks for the previous R first: take its latest promise and R, and
      // try once more.
      if (error instanceof HubError && error.code === 'PREVIOUS_R_NOT_REVEALED') {
        await this.#recover();
        return this.#send(this.#state!, promise, preimage, credited, false);
      }
      throw error;
    }
  }

  async #complete(inflight: Inflight): Promise<SignedHubPromise> {
    let hubPromise: SignedHubPromise;
    try {
      ({ hubPromise } = await this.hub.exchange(inflight.request));
    } catch (error) {
      // A refusal changed nothing at the hub: forget the request. Anything else (no answer, an answer
      // that cannot be read) may have been applied: keep it, to send it again first.
      if (error instanceof HubError && !error.retryable) await this.#save({ ...this.#state!, inflight: null });
      throw error;
    }
    const { promise } = inflight.request;
    try {
      this.#checkHubPromise(hubPromise, promise.hashlock, inflight.expectedTotal);
    } catch (error) {
      await this.#save({ ...this.#state!, inflight: null });
      throw error;
    }
    const state = this.#state!;
    const id = promise.agreement.id.toLowerCase();
    const next: ProviderState = {
      ...state,
      latest: hubPromise,
      latestPreimage: inflight.preimage,
      credited: { ...state.credited, [id]: promise.agreement.total },
      inflight: null,
    };
    await this.#save(next);
    return hubPromise;
  }

  #checkHubPromise(hubPromise: SignedHubPromise, hashlock: Hex, expectedTotal: bigint | undefined): void {
    const info = this.info;
    const advice =
      'The promise was not stored. If the hub is right, resynchronise with `ledger.recover()`; otherwise stop using this hub.';
    if (!sameHex(hubPromise.hub, info.hub) || hubPromise.chainId !== info.chainId) {
      throw new HubAnswerRejectedError(
        hubPromise.chainId !== info.chainId ? 'WRONG_CHAIN' : 'WRONG_HUB',
        'a hub promise for another hub or chain',
        `${info.hub} on ${info.chainId}`,
        `${hubPromise.hub} on ${hubPromise.chainId}`,
        advice,
      );
    }
    if (!sameHex(hubPromise.provider, this.provider)) {
      throw new HubAnswerRejectedError(
        'WRONG_PROVIDER',
        'a hub promise to another provider',
        this.provider,
        hubPromise.provider,
        advice,
      );
    }
    if (!sameHex(hubPromise.hashlock, hashlock)) {
      throw new HubAnswerRejectedError(
        'WRONG_HASHLOCK',
        'a hub promise with another hashlock',
        hashlock,
        hubPromise.hashlock,
        advice,
      );
    }
    if (!verifyHubPromise(hubPromise, info.operator, this.#verifier)) {
      throw new HubAnswerRejectedError(
        'INVALID_SIGNATURE',
        'a hub promise not signed by the operator',
        info.operator,
        hubPromise.signature,
        advice,
      );
    }
    if (expectedTotal !== undefined && hubPromise.total !== expectedTotal) {
      throw new HubAnswerRejectedError(
        'WRONG_TOTAL',
        'a hub promise with the wrong total',
        `${expectedTotal} (previous total + increment)`,
        String(hubPromise.total),
        advice,
      );
    }
  }

  /** R sealed to the hub's public key (`encryptedPreimage`). */
  #seal(preimage: Hex): Hex {
    const publicKey = this.info.publicKey;
    this.#sealer ??= this.#options.preimageSealer
      ? this.#options.preimageSealer(publicKey)
      : (value: Hex) => sealPreimage(publicKey, value);
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

  async #recover(): Promise<Recovered | null> {
    const info = this.info;
    const request = await signRecoveryRequest(this.#account, {
      hub: info.hub,
      chainId: info.chainId,
      provider: this.provider,
      issuedAt: BigInt(Math.floor(this.#clock() / 1000)),
    });
    let answer: { hubPromise: SignedHubPromise | null; preimage: Hex | null };
    try {
      answer = await this.hub.recovery(request);
    } catch (error) {
      if (!(error instanceof HubError && error.code === 'UNKNOWN_PROVIDER')) throw error;
      answer = { hubPromise: null, preimage: null };
    }
    const state = this.#state!;
    if (!answer.hubPromise) {
      await this.#save({ ...state, inflight: null });
      return null;
    }
    const { hubPromise, preimage } = answer;
    this.#checkHubPromise(hubPromise, hubPromise.hashlock, undefined);
    if (preimage && !sameHex(hashlockOf(preimage), hubPromise.hashlock)) {
      throw new HubAnswerRejectedError(
        'WRONG_PREIMAGE',
        'a preimage that does not open the hashlock',
        hubPromise.hashlock,
        hashlockOf(preimage),
        'The recovered promise was not stored. Claim with the R you hold, or ask the hub operator.',
      );
    }
    const credited = { ...state.credited };
    // The exchange that got no answer was applied if the hub's latest promise is its own.
    const applied = state.inflight && sameHex(state.inflight.request.promise.hashlock, hubPromise.hashlock);
    if (applied) {
      const { agreement } = state.inflight!.request.promise;
      credited[agreement.id.toLowerCase()] = agreement.total;
    }
    const next: ProviderState = {
      ...state,
      latest: hubPromise,
      latestPreimage: preimage ?? (applied ? state.inflight!.preimage : null),
      // The hub gave R back: it knows it.
      unrevealed: null,
      credited,
      inflight: null,
    };
    await this.#save(next);
    return { hubPromise, preimage: next.latestPreimage };
  }

  async #preview(): Promise<{ quote: HubSettlementQuote; decision: SettlementDecision }> {
    const policy = this.#options.settlementPolicy;
    if (!policy) throw new InvalidOptionError('settlementPolicy', 'not set', 'Pass one to the ProviderLedger.');
    const quote = await this.hub.settlementQuote(this.provider);
    const decision = policy.decide({
      amount: quote.amount,
      hubFee: quote.hubFee,
      relayerFee: quote.relayerFee,
      now: Math.floor(this.#clock() / 1000),
    });
    const state = this.#state!;
    if (state.latest && state.latest.total >= quote.amount) {
      await this.#save({ ...state, settledEstimate: state.latest.total - quote.amount });
    }
    return { quote, decision };
  }

  /** `relayer` is the hub's relayer, from its settlement quote: the authorization is valid only when it submits. */
  async #settle(state: ProviderState, relayerFee: bigint, relayer: Address): Promise<HubJob> {
    if (!state.latest) {
      throw new InvalidOptionError('settlement', 'the provider holds no hub promise', 'Nothing to settle yet.');
    }
    const authorization = await signSettlementAuthorization(this.#account, state.latest, relayerFee, relayer);
    const job = await this.hub.requestSettlement({ provider: this.provider, relayerFee, authorization });
    await this.#save({ ...this.#state!, settlementId: job.id });
    return job;
  }

  async #save(state: ProviderState): Promise<void> {
    const info = this.info;
    const document: Json = {
      version: 1,
      hub: info.hub,
      chainId: info.chainId,
      provider: this.provider,
      latest: state.latest ? encodeMessage(state.latest) : null,
      latestPreimage: state.latestPreimage,
      unrevealed: state.unrevealed,
      credited: Object.fromEntries(Object.entries(state.credited).map(([id, total]) => [id, total.toString()])),
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
    await this.#store.put(this.key, document);
    this.#state = state;
  }
}
