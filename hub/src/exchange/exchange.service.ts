import {
  consumerPromiseDigestBytes,
  type ExchangeRequest,
  type HubScope,
  hubPromiseDigestBytes,
  openPreimage,
  type RecoveryResponse,
  type SignedHubPromise,
  verifyRecoveryRequest,
} from '@chit/sdk';
import { enableNativeHashing, nativeVerifier } from '@chit/sdk/node';
import type { OperatorSigner } from '../crypto/operator-signer';
import type { Hex } from '../db/bytes';
import { decodeWire } from '../errors/decode-wire';
import { HubError } from '../errors/hub-error';
import type { ExchangeRepository, RevealRepository } from '../repositories/exchange.repository';
import { decideExchanges, type ExchangeCandidate, type ExchangeOutcome, keccakHex } from './exchange.rules';
import { GroupCommit } from './group-commit';

/** How far a recovery request's `issuedAt` may be from the hub's clock. */
const RECOVERY_WINDOW_SECONDS = 300n;

export interface ExchangeOptions {
  /** Most exchanges committed in one transaction. */
  maxBatch: number;
  /** Batches in flight at once (each holds a database connection). */
  concurrency: number;
}

/** What one answered exchange did ('refused' when it threw), and how long it took; for metrics. */
export type ExchangeObserver = (outcome: 'ok' | 'repeated' | 'refused', seconds: number) => void;

/**
 * The protocol's exchange, reveal and recovery (docs/protocol.md). Stateless checks run here, per
 * request; the rules that need the books run in batches ({@link decideExchanges}) through group
 * commit. The hub promise is signed only after its credit committed.
 */
export class ExchangeService {
  private readonly verifier = nativeVerifier();
  private readonly group: GroupCommit<ExchangeCandidate, ExchangeOutcome>;

  constructor(
    private readonly scope: HubScope,
    private readonly exchanges: ExchangeRepository,
    private readonly reveals: RevealRepository,
    private readonly signer: OperatorSigner,
    options: ExchangeOptions,
    private readonly observe?: ExchangeObserver,
  ) {
    enableNativeHashing();
    this.group = new GroupCommit((candidates) => this.commit(candidates), options);
  }

  /** Requests waiting for a batch. */
  get queueDepth(): number {
    return this.group.waiting;
  }

  /** Swaps a consumer promise for a hub promise. */
  async exchange(body: unknown): Promise<{ hubPromise: SignedHubPromise }> {
    const started = performance.now();
    let outcome: 'ok' | 'repeated' | 'refused' = 'refused';
    try {
      const { hubPromise, repeated } = await this.swap(body);
      outcome = repeated ? 'repeated' : 'ok';
      return { hubPromise };
    } finally {
      this.observe?.(outcome, (performance.now() - started) / 1000);
    }
  }

  private async swap(body: unknown): Promise<{ hubPromise: SignedHubPromise; repeated: boolean }> {
    const request = decodeWire('exchangeRequest', body);
    const promise = request.promise;
    this.requireScope(promise);
    const signer = this.verifier.recover(consumerPromiseDigestBytes(promise), promise.signature);
    if (signer !== promise.consumer.toLowerCase()) {
      throw new HubError('INVALID_SIGNATURE', 'The consumer promise is not signed by its consumer', {
        consumer: promise.consumer,
        recovered: signer ?? null,
      });
    }
    const outcome = await this.group.submit(toCandidate(request));
    if (!outcome.ok) throw outcome.error;
    const hubPromise = this.signHubPromise(promise.agreement.provider, outcome.hubTotal, promise.hashlock);
    return { hubPromise, repeated: outcome.repeated };
  }

  /** Records the R of one of the provider's hub promises. */
  async reveal(body: unknown): Promise<{ revealed: true }> {
    const reveal = decodeWire('reveal', body);
    this.requireScope(reveal);
    const hashlock = keccakHex(reveal.preimage);
    if (!(await this.reveals.reveal(lower(reveal.provider), hashlock, reveal.preimage))) {
      throw new HubError('UNKNOWN_PREIMAGE', 'This preimage matches none of your hub promises', { hashlock });
    }
    return { revealed: true };
  }

  /** Gives a provider that lost its store its latest hub promise, re-signed, and its R. */
  async recover(body: unknown, now = BigInt(Math.floor(Date.now() / 1000))): Promise<RecoveryResponse> {
    const request = decodeWire('recoveryRequest', body);
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
    const preimage = latest.preimage ?? openPreimage(this.signer.privateKey, latest.encryptedPreimage) ?? null;
    return {
      hubPromise: this.signHubPromise(request.provider, latest.hubTotal, latest.hashlock),
      preimage: preimage && keccakHex(preimage) === latest.hashlock ? preimage : null,
    };
  }

  private async commit(candidates: ExchangeCandidate[]): Promise<ExchangeOutcome[]> {
    return this.exchanges.inBatch(candidates, (state) => {
      const { outcomes, writes } = decideExchanges(candidates, state, (box) =>
        openPreimage(this.signer.privateKey, box),
      );
      return { writes, result: outcomes };
    });
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

function toCandidate(request: ExchangeRequest): ExchangeCandidate {
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
    previousPreimage: request.previousPreimage ? lower(request.previousPreimage) : undefined,
  };
}
