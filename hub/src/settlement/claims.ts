import {
  getConsumerChannel,
  getProviderChannel,
  type HubScope,
  hubAbi,
  hubPromiseDigestBytes,
  type SignedConsumerPromise,
  type SignedHubPromise,
  verifyConsumerPromise,
} from '@chit/sdk';
import { nativePreimageOpener, nativeVerifier } from '@chit/sdk/node';
import { getAddress, keccak256 } from 'viem';
import { multicall } from 'viem/actions';
import type { ChainService } from '../chain/chain.service';
import type { OutboxRepository } from '../chain/outbox/outbox.repository';
import type { OperatorSigner } from '../crypto/operator-signer';
import type { Hex } from '../db/bytes';
import type { ExchangeRecord } from '../exchange/exchange.rules';
import { PermanentFault } from './settlement.errors';
import { DEFAULT_GAS_PER_PROMISE } from './settlement.policy';
import type { SettlementRepository } from './settlement.repository';
import type { SettlementKind, SettlementOf } from './settlement.types';

const GAS_CACHE_MS = 60_000;

/**
 * What every part of the settlement wing reads to build and price claims: the claims of a settlement
 * (the promise, R, the relayer's fee), what a channel has settled on-chain, and the gas per promise
 * of the hub's recent transactions.
 */
export class Claims {
  private readonly verifier = nativeVerifier();
  /** Opens the boxes of exchanges recorded before the hub opened them at exchange time. */
  private readonly openBox: (box: Hex) => Hex | undefined;
  private readonly gasCache = new Map<SettlementKind, { at: number; gas: bigint }>();

  constructor(
    private readonly scope: HubScope,
    private readonly chain: ChainService,
    private readonly repository: SettlementRepository,
    private readonly outbox: OutboxRepository,
    private readonly signer: OperatorSigner,
  ) {
    this.openBox = nativePreimageOpener(signer.privateKey);
  }

  /** The claim of a consumer settlement: the consumer's promise, checked, and R. */
  async consumerClaim(row: SettlementOf<'consumer'>): Promise<{ promise: SignedConsumerPromise; preimage: Hex }> {
    const exchange = await this.repository.exchange(row.payload.hashlock);
    if (!exchange || exchange.consumer !== row.subject) {
      throw new PermanentFault(
        `no exchange ${row.payload.hashlock} of consumer ${getAddress(row.subject)}`,
        'INVALID_CLAIM',
      );
    }
    const promise: SignedConsumerPromise = {
      ...this.scope,
      consumer: getAddress(exchange.consumer),
      total: exchange.consumerTotal,
      hashlock: exchange.hashlock,
      agreement: { provider: getAddress(exchange.provider), id: exchange.agreementId, total: exchange.agreementTotal },
      signature: exchange.consumerSignature,
    };
    if (!verifyConsumerPromise(promise, this.verifier)) {
      throw new PermanentFault(
        `the promise of ${getAddress(row.subject)} for ${exchange.consumerTotal} is not signed by it`,
        'INVALID_CLAIM',
      );
    }
    const preimage = await this.preimageOf(exchange);
    if (!preimage) throw new Error(`R of ${exchange.hashlock} is not known yet`);
    return { promise, preimage };
  }

  /** The claim of a provider settlement: the hub's promise, signed, R, and the relayer fee it pays. */
  async providerClaim(row: SettlementOf<'provider'>) {
    const { payload } = row;
    const exchange = await this.repository.exchange(payload.hashlock);
    if (!exchange || exchange.provider !== row.subject || exchange.hubTotal !== row.amount) {
      throw new PermanentFault(
        `no exchange ${payload.hashlock} of provider ${getAddress(row.subject)} for ${row.amount}`,
        'INVALID_CLAIM',
      );
    }
    const preimage = await this.preimageOf(exchange);
    if (!preimage) throw new Error(`R of ${exchange.hashlock} is not known yet`);
    const fee = BigInt(payload.relayerFee);
    return {
      promise: this.signedHubPromise(exchange),
      preimage,
      relayer: fee > 0n && payload.authorization ? { fee, authorization: payload.authorization } : undefined,
    };
  }

  hubPromise(exchange: ExchangeRecord) {
    return {
      ...this.scope,
      provider: getAddress(exchange.provider),
      total: exchange.hubTotal,
      hashlock: exchange.hashlock,
    };
  }

  signedHubPromise(exchange: ExchangeRecord): SignedHubPromise {
    const promise = this.hubPromise(exchange);
    return { ...promise, signature: this.signer.signDigest(hubPromiseDigestBytes(promise)) };
  }

  /**
   * R of an exchange: recorded with it, or for an exchange an earlier hub version recorded without R,
   * opened from the box the provider sent. Nothing is written: see {@link preimageOf}.
   */
  openPreimage(exchange: ExchangeRecord): { preimage: Hex; opened: boolean } | undefined {
    if (exchange.preimage) return { preimage: exchange.preimage, opened: false };
    const opened = this.openBox(exchange.encryptedPreimage);
    if (!opened || keccak256(opened) !== exchange.hashlock) return undefined;
    return { preimage: opened.toLowerCase() as Hex, opened: true };
  }

  /** R of an exchange ({@link openPreimage}); one opened from its box is recorded. */
  async preimageOf(exchange: ExchangeRecord): Promise<Hex | undefined> {
    const found = this.openPreimage(exchange);
    if (found?.opened) await this.repository.recordPreimage(exchange.hashlock, found.preimage);
    return found?.preimage;
  }

  async providerSettled(provider: Hex): Promise<bigint> {
    const { registry } = await this.chain.hubInfo();
    return (await getProviderChannel(this.chain.client, { hub: this.scope.hub, provider, registry })).settled;
  }

  async consumerSettled(consumer: Hex): Promise<bigint> {
    return (await getConsumerChannel(this.chain.client, { hub: this.scope.hub, consumer })).settled;
  }

  /** What the chain has settled of a consumer or provider claim's channel. */
  settledOf(row: { kind: SettlementKind; subject: Hex }): Promise<bigint> {
    return row.kind === 'consumer' ? this.consumerSettled(row.subject) : this.providerSettled(row.subject);
  }

  async providersSettled(providers: Hex[]): Promise<bigint[]> {
    return multicall(this.chain.client, {
      allowFailure: false,
      deployless: true,
      contracts: providers.map((provider) => ({
        address: this.scope.hub,
        abi: hubAbi,
        functionName: 'providerSettled' as const,
        args: [provider] as const,
      })),
    });
  }

  /** Gas per promise of the hub's recent transactions of `kind`, or the snapshot's figure. */
  async gasPerPromise(kind: SettlementKind): Promise<bigint> {
    const cached = this.gasCache.get(kind);
    if (cached && Date.now() - cached.at < GAS_CACHE_MS) return cached.gas;
    const gas = (await this.outbox.gasPerClaim(kind, 20)) ?? DEFAULT_GAS_PER_PROMISE[kind];
    this.gasCache.set(kind, { at: Date.now(), gas });
    return gas;
  }
}
