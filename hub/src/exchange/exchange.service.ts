import {
  consumerPromiseDigestBytes,
  type ExchangeRequest,
  type HubPromise,
  type HubScope,
  type HubStatus,
  hubPromiseDigestBytes,
  maxExchangesPerRequest,
  type RecoveryResponse,
  type Reveal,
  type SignedConsumerPromise,
  type SignedHubPromise,
  type SignedRecoveryRequest,
  verifyRecoveryRequest,
} from '@chit/sdk';
import { enableNativeHashing, nativePreimageOpener, nativeVerifier } from '@chit/sdk/node';
import { getAddress } from 'viem';
import type { CryptoVerdict } from '../crypto/exchange-crypto';
import { type ExchangeCrypto, exchangeCrypto } from '../crypto/exchange-crypto.pool';
import type { OperatorSigner } from '../crypto/operator-signer';
import type { Hex } from '../db/bytes';
import { decodeWire } from '../errors/decode-wire';
import { HubError, type HubErrorCode } from '../errors/hub-error';
import type { ExchangeRepository, RevealRepository } from '../repositories/exchange.repository';
import { decideExchanges, type ExchangeCandidate, type ExchangeOutcome, keccakHex } from './exchange.rules';
import { type BooksCounts, ExchangeBooks } from './exchange-books';
import { GroupCommit } from './group-commit';

/** How far a recovery request's `issuedAt` may be from the hub's clock. */
const RECOVERY_WINDOW_SECONDS = 300n;

export interface ExchangeOptions {
  /** Most exchanges committed in one transaction. */
  maxBatch: number;
  /** Batches in flight at once (each holds a database connection). */
  concurrency: number;
  /**
   * Where signature recovery, boxes and hub signatures run (default: inline, in the calling thread).
   * The hub gives it worker threads (CRYPTO_THREADS).
   */
  crypto?: ExchangeCrypto;
  /**
   * How many consumers, providers and agreements (each) the books keep in memory to decide batches on
   * without locking their rows ({@link ExchangeBooks}); 0 locks them for every batch. Default 50,000.
   */
  memoryRows?: number;
}

/**
 * What one answered exchange did ('refused' when it threw), and how long it took; for metrics.
 * `code` is the refusal's code for an item of a batch, answered inside a 200 (the error filter never
 * sees it); a single exchange's refusal is counted by the filter.
 */
export type ExchangeObserver = (outcome: 'ok' | 'repeated' | 'refused', seconds: number, code?: HubErrorCode) => void;

/**
 * One item of a batch answer: the hub promise; with `sign: 'latest'`, for an item credited whose hub
 * promise the answer does not sign, what was credited and the index of the item whose signed hub
 * promise covers it; or the error `POST /v1/exchange` would have answered.
 */
export type ExchangeItemResult =
  | { hubPromise: SignedHubPromise }
  | { covered: { total: bigint; hashlock: Hex; by: number } }
  | { error: { code: HubErrorCode; message: string; details: Record<string, unknown> } };

/**
 * Which hub promises a batch answer signs: `each` item's (the default), or only the `latest` of each
 * provider, whose cumulative total covers the provider's other items of the request.
 */
export type BatchSigning = 'each' | 'latest';

/** A decoded `POST /v1/exchanges` body: its items ({@link decodeExchangeBatch}) and which promises to sign. */
export interface ExchangeBatch {
  items: Array<ExchangeRequest | HubError>;
  sign: BatchSigning;
}

/** A request that passed the stateless checks, with the candidate the batch rules decide on. */
interface CheckedExchange {
  request: ExchangeRequest;
  candidate: ExchangeCandidate;
}

/**
 * The protocol's exchange, reveal and recovery (docs/protocol.md). Stateless checks run here, per
 * request; the rules that need the books run in batches ({@link decideExchanges}) through group
 * commit. The hub promise is signed only after its credit committed.
 */
export class ExchangeService {
  private readonly verifier = nativeVerifier();
  /** Opens `encryptedPreimage` boxes with the operator key. */
  private readonly openBox: (box: Hex) => Hex | undefined;
  private readonly group: GroupCommit<ExchangeCandidate, ExchangeOutcome>;
  private readonly books: ExchangeBooks;
  private readonly crypto: ExchangeCrypto;

  constructor(
    private readonly scope: HubScope,
    exchanges: ExchangeRepository,
    private readonly reveals: RevealRepository,
    private readonly signer: OperatorSigner,
    options: ExchangeOptions,
    private readonly observe?: ExchangeObserver,
    /** The hub's on-chain status as last read: a closing or closed hub issues no new promise. */
    private readonly hubStatus: () => HubStatus | undefined = () => undefined,
  ) {
    enableNativeHashing();
    this.openBox = nativePreimageOpener(signer.privateKey);
    this.books = new ExchangeBooks(exchanges, options.memoryRows ?? 50_000);
    this.group = new GroupCommit((candidates) => this.commit(candidates), options);
    this.crypto = options.crypto ?? exchangeCrypto(signer.privateKey, 0);
  }

  /** Stops the crypto threads. */
  close(): Promise<void> {
    return this.crypto.close();
  }

  /** How many batches were decided on the books in memory, and how many on locked rows. */
  get batchCounts(): Readonly<BooksCounts> {
    return this.books.counts;
  }

  /** Requests waiting for a batch. */
  get queueDepth(): number {
    return this.group.waiting;
  }

  /** Swaps a consumer promise for a hub promise. */
  async exchange(request: ExchangeRequest): Promise<{ hubPromise: SignedHubPromise }> {
    const started = performance.now();
    let outcome: 'ok' | 'repeated' | 'refused' = 'refused';
    try {
      const { hubPromise, repeated } = await this.swap(request);
      outcome = repeated ? 'repeated' : 'ok';
      return { hubPromise };
    } finally {
      this.observe?.(outcome, (performance.now() - started) / 1000);
    }
  }

  /**
   * Swaps many consumer promises at once (`POST /v1/exchanges`): each item is checked and answered as
   * {@link exchange} would answer it alone, in request order, and one item's refusal never affects
   * another. The items that pass the stateless checks go through group commit together, in one
   * transaction, decided in their order. A failure of the hub itself (database down) fails the whole
   * request, and nothing of it is committed. `items` are decoded by {@link decodeExchangeBatch}: an item
   * that did not decode is answered with its MALFORMED error.
   *
   * With `sign: 'latest'` the hub signs one hub promise per provider: that of its item of the highest
   * total (the last of equal ones), which covers the provider's other items, since a hub promise is
   * cumulative and the hub holds every item's R before it signs. The others are answered `covered`.
   */
  async exchangeMany(
    items: Array<ExchangeRequest | HubError>,
    sign: BatchSigning = 'each',
  ): Promise<{ results: ExchangeItemResult[] }> {
    const started = performance.now();
    const checked = await this.checkAll(items);
    const passed = checked.filter((entry): entry is CheckedExchange => !(entry instanceof HubError));
    const outcomes = await this.group.submitAll(passed.map((entry) => entry.candidate));
    let next = 0;
    const decided = checked.map((entry) =>
      entry instanceof HubError
        ? { entry, outcome: { ok: false, error: entry } as const }
        : { entry, outcome: outcomes[next++]! },
    );
    const promises = decided.map(({ entry, outcome }) =>
      outcome.ok ? this.hubPromiseOf((entry as CheckedExchange).request, outcome.hubTotal) : undefined,
    );
    const coverOf = sign === 'latest' ? coveringItems(promises) : promises.map((_, i) => i);
    // The hub promises the answer signs, together, after their credits committed.
    const signing = promises.flatMap((promise, i) => (promise && coverOf[i] === i ? [i] : []));
    const signatures = new Map(
      (await this.crypto.sign(signing.map((i) => promises[i]!))).map((signature, k) => [signing[k]!, signature]),
    );
    const seconds = (performance.now() - started) / 1000;
    const results = decided.map(({ outcome }, i): ExchangeItemResult => {
      if (!outcome.ok) {
        this.observe?.('refused', seconds, outcome.error.code);
        const { code, message, details } = outcome.error;
        return { error: { code, message, details } };
      }
      this.observe?.(outcome.repeated ? 'repeated' : 'ok', seconds);
      const promise = promises[i]!;
      const signature = signatures.get(i);
      if (signature) return { hubPromise: { ...promise, signature } };
      return { covered: { total: promise.total, hashlock: promise.hashlock, by: coverOf[i]! } };
    });
    return { results };
  }

  private async swap(exchange: ExchangeRequest): Promise<{ hubPromise: SignedHubPromise; repeated: boolean }> {
    const [checked] = await this.checkAll([exchange]);
    if (checked instanceof HubError) throw checked;
    const outcome = await this.group.submit(checked!.candidate);
    if (!outcome.ok) throw outcome.error;
    const promise = this.hubPromiseOf(exchange, outcome.hubTotal);
    const [signature] = await this.crypto.sign([promise]);
    return { hubPromise: { ...promise, signature: signature! }, repeated: outcome.repeated };
  }

  /**
   * The stateless checks of each exchange (chain, hub, the hub's status, then the consumer signature and
   * R, whose crypto runs together for all of them): its candidate for the batch rules, or the HubError it
   * is answered with. The hub signs a hub promise only when it can collect the consumer promise it pays
   * for, so the box must open with the operator key to the R of the promise's hashlock.
   */
  private async checkAll(items: Array<ExchangeRequest | HubError>): Promise<Array<CheckedExchange | HubError>> {
    const scoped = items.map((item) =>
      item instanceof HubError
        ? item
        : refusalOf(() => {
            this.checkScope(item.promise);
            return item;
          }),
    );
    const requests = scoped.filter((entry): entry is ExchangeRequest => !(entry instanceof HubError));
    const verdicts = await this.crypto.check(
      requests.map((request) => ({ promise: request.promise, box: request.encryptedPreimage })),
    );
    let next = 0;
    return scoped.map((entry) => {
      if (entry instanceof HubError) return entry;
      const verdict = verdicts[next++]!;
      return refusalOf(() => ({ request: entry, candidate: toCandidate(entry, judge(entry.promise, verdict)) }));
    });
  }

  /**
   * The stateless checks of an exchange that need no box: chain, hub, the hub's status and the consumer
   * signature. Throws the HubError the exchange would answer; credits nothing.
   */
  checkPromise(promise: SignedConsumerPromise): void {
    this.checkScope(promise);
    const signer = this.verifier.recover(consumerPromiseDigestBytes(promise), promise.signature);
    if (signer !== promise.consumer.toLowerCase()) throw signatureRefusal(promise, signer ?? null);
  }

  /** R from `box`, when it opens with the operator key to the R of the promise's hashlock; else INVALID_PREIMAGE_BOX. */
  checkBox(promise: SignedConsumerPromise, box: Hex): Hex {
    const preimage = this.openBox(box);
    if (!preimage || keccakHex(preimage) !== promise.hashlock.toLowerCase()) throw boxRefusal(promise, !!preimage);
    return preimage;
  }

  /** Chain, hub and the hub's status: a closing or closed hub issues no new promise. */
  private checkScope(promise: SignedConsumerPromise): void {
    this.requireScope(promise);
    const status = this.hubStatus();
    if (status === 'closing' || status === 'closed') {
      // Its stake and free funds go back to the operator when it closes: a promise issued now might
      // not be paid by the time a provider settles it.
      throw new HubError('HUB_CLOSING', `This hub is ${status} on-chain and issues no new promises`, { status });
    }
  }

  /** Records the R of one of the provider's hub promises. */
  async reveal(reveal: Reveal): Promise<{ revealed: true }> {
    this.requireScope(reveal);
    const hashlock = keccakHex(reveal.preimage);
    if (!(await this.reveals.reveal(lower(reveal.provider), hashlock, reveal.preimage))) {
      throw new HubError('UNKNOWN_PREIMAGE', 'This preimage matches none of your hub promises', { hashlock });
    }
    return { revealed: true };
  }

  /** Gives a provider that lost its store its latest hub promise, re-signed, and its R. */
  async recover(
    request: SignedRecoveryRequest,
    now = BigInt(Math.floor(Date.now() / 1000)),
  ): Promise<RecoveryResponse> {
    this.requireScope(request);
    if (!verifyRecoveryRequest(request, this.verifier)) {
      throw new HubError('INVALID_SIGNATURE', 'The recovery request is not signed by its provider', {
        provider: request.provider,
      });
    }
    const age = now - request.issuedAt;
    if (age > RECOVERY_WINDOW_SECONDS || age < -RECOVERY_WINDOW_SECONDS) {
      throw new HubError('STALE_REQUEST', 'Sign a new recovery request: issuedAt must be within 5 minutes of now', {
        issuedAt: request.issuedAt.toString(),
        now: now.toString(),
      });
    }
    const latest = await this.reveals.latest(lower(request.provider));
    if (!latest) return { hubPromise: null, preimage: null };
    const preimage = latest.preimage ?? this.openBox(latest.encryptedPreimage) ?? null;
    return {
      hubPromise: this.signHubPromise(request.provider, latest.hubTotal, latest.hashlock),
      preimage: preimage && keccakHex(preimage) === latest.hashlock ? preimage : null,
    };
  }

  private commit(candidates: ExchangeCandidate[]): Promise<ExchangeOutcome[]> {
    return this.books.decide(candidates, (state) => decideExchanges(candidates, state, this.openBox));
  }

  private hubPromiseOf(request: ExchangeRequest, total: bigint): HubPromise {
    const { promise } = request;
    return { ...this.scope, provider: promise.agreement.provider, total, hashlock: promise.hashlock };
  }

  private signHubPromise(provider: `0x${string}`, total: bigint, hashlock: `0x${string}`): SignedHubPromise {
    const promise = { ...this.scope, provider, total, hashlock };
    return { ...promise, signature: this.signer.signDigest(hubPromiseDigestBytes(promise)) };
  }

  private requireScope(message: HubScope): void {
    if (message.chainId !== this.scope.chainId) {
      throw new HubError('WRONG_CHAIN', `This hub is on chain ${this.scope.chainId}`, {
        expected: this.scope.chainId,
        got: message.chainId,
      });
    }
    if (message.hub.toLowerCase() !== this.scope.hub.toLowerCase()) {
      throw new HubError('WRONG_HUB', `This hub is ${this.scope.hub}`, { expected: this.scope.hub, got: message.hub });
    }
  }
}

const lower = (address: string): Hex => address.toLowerCase() as Hex;

/** R from the crypto's verdict on an exchange, or the HubError the exchange is answered with. */
function judge(promise: SignedConsumerPromise, verdict: CryptoVerdict): Hex {
  if (verdict.signer !== promise.consumer.toLowerCase()) throw signatureRefusal(promise, verdict.signer);
  if (!verdict.preimage) throw boxRefusal(promise, verdict.opened);
  return verdict.preimage;
}

function signatureRefusal(promise: SignedConsumerPromise, recovered: string | null): HubError {
  return new HubError('INVALID_SIGNATURE', 'The consumer promise is not signed by its consumer', {
    consumer: promise.consumer,
    recovered: recovered ? getAddress(recovered) : null,
  });
}

function boxRefusal(promise: SignedConsumerPromise, opened: boolean): HubError {
  return new HubError(
    'INVALID_PREIMAGE_BOX',
    opened
      ? "encryptedPreimage holds an R whose keccak256 is not the promise's hashlock"
      : "encryptedPreimage does not open with the hub's key (GET /v1/info, publicKey)",
    { hashlock: promise.hashlock },
  );
}

/** `run()`, or the HubError it threw; other errors propagate. */
function refusalOf<T>(run: () => T): T | HubError {
  try {
    return run();
  } catch (error) {
    if (error instanceof HubError) return error;
    throw error;
  }
}

/**
 * Decodes a batch body `{ exchanges: [...], sign? }` of 1 to {@link maxExchangesPerRequest} items (else
 * throws MALFORMED for the whole request): each item as an exchange request, or the MALFORMED error that
 * item alone is answered with; `sign` is `each` (the default) or `latest`.
 */
export function decodeExchangeBatch(body: unknown): ExchangeBatch {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new HubError('MALFORMED', 'Expected an object { exchanges: [...] }', { path: '' });
  }
  for (const key of Object.keys(body)) {
    if (key !== 'exchanges' && key !== 'sign') throw new HubError('MALFORMED', `Unknown field ${key}`, { path: key });
  }
  const { exchanges, sign = 'each' } = body as { exchanges?: unknown; sign?: unknown };
  if (sign !== 'each' && sign !== 'latest') {
    throw new HubError('MALFORMED', 'sign: expected "each" or "latest"', { path: 'sign' });
  }
  if (!Array.isArray(exchanges)) {
    throw new HubError('MALFORMED', 'exchanges: expected a list of exchange requests', { path: 'exchanges' });
  }
  if (exchanges.length < 1 || exchanges.length > maxExchangesPerRequest) {
    throw new HubError(
      'MALFORMED',
      `exchanges: expected 1 to ${maxExchangesPerRequest} exchange requests, got ${exchanges.length}`,
      { path: 'exchanges', count: exchanges.length, max: maxExchangesPerRequest },
    );
  }
  return { items: exchanges.map((item) => refusalOf(() => decodeWire('exchangeRequest', item))), sign };
}

/**
 * For each hub promise of a batch answer (undefined for a refused item), the index of the one whose
 * signature covers it: per provider, the promise of the highest total, the last of equal ones. A
 * repeated item keeps the total it was first credited at, so the highest is not always the last.
 */
function coveringItems(promises: ReadonlyArray<HubPromise | undefined>): number[] {
  const cover = new Map<string, number>();
  promises.forEach((promise, i) => {
    if (!promise) return;
    const provider = promise.provider.toLowerCase();
    const best = cover.get(provider);
    if (best === undefined || promise.total >= promises[best]!.total) cover.set(provider, i);
  });
  return promises.map((promise) => (promise ? cover.get(promise.provider.toLowerCase())! : -1));
}

function toCandidate(request: ExchangeRequest, preimage: Hex): ExchangeCandidate {
  const { promise } = request;
  return {
    hashlock: lower(promise.hashlock),
    provider: lower(promise.agreement.provider),
    consumer: lower(promise.consumer),
    agreementId: lower(promise.agreement.id),
    agreementTotal: promise.agreement.total,
    consumerTotal: promise.total,
    consumerSignature: lower(promise.signature),
    encryptedPreimage: lower(request.encryptedPreimage),
    preimage: lower(preimage),
    previousPreimage: request.previousPreimage ? lower(request.previousPreimage) : undefined,
  };
}
