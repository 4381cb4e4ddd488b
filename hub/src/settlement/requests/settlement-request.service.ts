import { settlementAuthorizationDigest } from '@chit/sdk';
import { nativeVerifier } from '@chit/sdk/node';
import { getAddress, hexToBytes } from 'viem';
import { getGasPrice } from 'viem/actions';
import type { ChainService } from '../../chain/chain.service';
import type { Hex } from '../../db/bytes';
import { HubError } from '../../errors/hub-error';
import type { Claims } from '../claims';
import type { SettlementRequest } from '../settlement.dto';
import { hubFeeOf, minimumRelayerFee, quoteRelayerFee, settlementId, type TokenRate } from '../settlement.policy';
import type { SettlementRepository } from '../settlement.repository';
import {
  type NewSettlement,
  type SettlementQueue,
  type SettlementRecord,
  type SettlementView,
  view,
} from '../settlement.types';
import type { RequestsRepository } from './requests.repository';
import { requireProviderSettlement, unknownProvider } from './requests.rules';

export interface RequestOptions {
  relayerFeeMarginBps: number;
  tokenRate: TokenRate;
  quoteValiditySeconds: number;
}

/** Hub promises of a provider tried when matching a settlement authorization (the latest first). */
const AUTHORIZATION_LOOKBACK = 16;

/** Settlement requests: the relayer's quote, a provider's request to settle through it, and a settlement's status. */
export class SettlementRequestService {
  private readonly verifier = nativeVerifier();

  constructor(
    private readonly chain: ChainService,
    private readonly claims: Claims,
    private readonly settlements: SettlementRepository,
    private readonly repository: RequestsRepository,
    private readonly queue: SettlementQueue,
    /** The account that sends the settlements (RELAYER_KEY's, else OPERATOR_KEY's): the one a provider's
     * SettlementAuthorization names, since the Hub checks it against the transaction's sender. */
    private readonly relayer: `0x${string}`,
    private readonly options: RequestOptions,
  ) {}

  /** `GET /v1/quotes/settlement`: what settling the provider's latest hub promise through the relayer costs now. */
  async quote(provider: Hex) {
    const [latest] = await this.repository.providerExchanges(provider, 1);
    if (!latest) throw unknownProvider(provider);
    const [settled, info, gasPrice, gasPerPromise] = await Promise.all([
      this.claims.providerSettled(provider),
      this.chain.hubInfo(),
      getGasPrice(this.chain.client),
      this.claims.gasPerPromise('provider'),
    ]);
    const amount = latest.hubTotal > settled ? latest.hubTotal - settled : 0n;
    return {
      provider: getAddress(provider),
      amount,
      hubFee: hubFeeOf(amount, info.fee),
      relayerFee: quoteRelayerFee({
        gasPrice,
        gasPerPromise,
        marginBps: this.options.relayerFeeMarginBps,
        rate: this.options.tokenRate,
      }),
      relayer: this.relayer,
      gasPrice,
      validUntil: BigInt(Math.floor(Date.now() / 1000) + this.options.quoteValiditySeconds),
    };
  }

  /**
   * `POST /v1/settlements`: queues the settlement of the provider's hub promise that `authorization`
   * signs (its latest, or one of the few before it), paying the relayer `relayerFee` out of it. The
   * authorization must name this hub's relayer (the quote's `relayer`): the Hub accepts it only from
   * that sender. A repeated request gets the same settlement; one that failed is queued again.
   */
  async requestProviderSettlement({ provider, relayerFee, authorization }: SettlementRequest): Promise<SettlementView> {
    const exchanges = await this.repository.providerExchanges(provider, AUTHORIZATION_LOOKBACK);
    if (exchanges.length === 0) throw unknownProvider(provider);
    const exchange = exchanges.find(
      (candidate) =>
        this.verifier.recover(
          hexToBytes(settlementAuthorizationDigest(this.claims.hubPromise(candidate), relayerFee, this.relayer)),
          authorization,
        ) === provider,
    );
    if (!exchange) {
      throw new HubError(
        'INVALID_SIGNATURE',
        'The authorization is not the provider’s SettlementAuthorization of one of its latest hub promises with this relayer fee and this hub’s relayer',
        { provider: getAddress(provider), relayer: this.relayer },
      );
    }
    const id = settlementId.provider(provider, exchange.hubTotal);
    const existing = await this.settlements.get(id);
    if (existing && existing.status !== 'failed') return view(existing);

    const [settled, info, gasPrice, gasPerPromise] = await Promise.all([
      this.claims.providerSettled(provider),
      this.chain.hubInfo(),
      getGasPrice(this.chain.client),
      this.claims.gasPerPromise('provider'),
    ]);
    requireProviderSettlement({
      total: exchange.hubTotal,
      settled,
      relayerFee,
      hubFeeBps: info.fee,
      minimum: minimumRelayerFee({ gasPrice, gasPerPromise, rate: this.options.tokenRate }),
    });
    if (!(await this.claims.preimageOf(exchange))) {
      throw new HubError('PREVIOUS_R_NOT_REVEALED', 'Reveal the R of this hub promise first (POST /v1/reveal)', {
        hashlock: exchange.hashlock,
      });
    }
    const payload = { hashlock: exchange.hashlock, relayerFee: relayerFee.toString(), authorization };
    const row = await this.createOrRequeue({
      id,
      kind: 'provider',
      subject: provider,
      amount: exchange.hubTotal,
      payload,
    });
    return view(row);
  }

  /** `GET /v1/settlements/{id}`, by its canonical id (decodeSettlementId). */
  async settlement(id: string): Promise<SettlementView> {
    const row = await this.settlements.get(id);
    if (!row) throw new HubError('NOT_FOUND', `No settlement ${id}`, { id });
    return view(row);
  }

  /** Records a new settlement and queues it; a failed one is queued again; any other is left as it is. */
  private async createOrRequeue(settlement: NewSettlement): Promise<SettlementRecord> {
    const { row, queued } = await this.repository.createOrRequeue(settlement);
    if (queued) await this.queue.enqueue([row]);
    return row;
  }
}
