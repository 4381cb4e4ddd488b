import {
  chitTokenAbi,
  type HubScope,
  registerIdentityTypes,
  registryAbi,
  registryDomain,
  setBeneficiaryTypes,
} from '@chit/sdk';
import { type Address, erc20Abi, getAddress, verifyTypedData } from 'viem';
import { getBlock, getGasPrice, multicall, readContract } from 'viem/actions';
import type { ChainService } from '../../chain/chain.service';
import type { Hex } from '../../db/bytes';
import { HubError } from '../../errors/hub-error';
import type { Claims } from '../claims';
import type { RelayBeneficiaryRequest, RelayIdentityRequest } from '../settlement.dto';
import { minimumRelayerFee, PERMIT_GAS, quoteRelayerFee, settlementId } from '../settlement.policy';
import type { SettlementRepository } from '../settlement.repository';
import {
  type NewSettlement,
  type SettlementQueue,
  type SettlementRecord,
  type SettlementView,
  view,
} from '../settlement.types';
import type { RequestsRepository } from './requests.repository';
import { PERMIT_TYPES, type RelayKind, requirePayable, requirePermitDeadline, requireRelayFee } from './requests.rules';
import type { RequestOptions } from './settlement-request.service';

/**
 * Relayed Registry actions: the relayer's quote, identity registrations (with the identity's EIP-2612
 * permit of the fee, for an identity without gas) and beneficiary changes, each checked against its
 * signature, its fee and what the identity can pay before it is queued.
 */
export class RelayRequestService {
  constructor(
    private readonly scope: HubScope,
    private readonly chain: ChainService,
    private readonly claims: Claims,
    private readonly settlements: SettlementRepository,
    private readonly repository: RequestsRepository,
    private readonly queue: SettlementQueue,
    /** The account that sends the relayed actions: the one an identity's `RegisterIdentity` must name. */
    private readonly relayer: Address,
    private readonly options: RequestOptions,
  ) {}

  /**
   * `GET /v1/quotes/relay?kind=identity|identity-permit|beneficiary`: the relayer fee the hub asks now
   * for relaying a registration (`identity-permit`: a registration whose fee the relayer collects with
   * the identity's EIP-2612 permit, which it submits first) or a beneficiary change, computed like the
   * settlement quote (gas of the transactions x gas price x the margin, in token units). The Registry pays
   * no relayer fee for a beneficiary change, so its quote is what the hub would need and cannot be paid:
   * the hub relays those only when it is 0. `relayer` is the account a registration must name.
   */
  async relayQuote(kind: RelayKind) {
    const [gasPrice, gas] = await Promise.all([getGasPrice(this.chain.client), this.relayGas(kind)]);
    return {
      kind,
      relayerFee: quoteRelayerFee({
        gasPrice,
        gasPerPromise: gas,
        marginBps: this.options.relayerFeeMarginBps,
        rate: this.options.tokenRate,
      }),
      relayer: this.relayer,
      gasPrice,
      validUntil: BigInt(Math.floor(Date.now() / 1000) + this.options.quoteValiditySeconds),
    };
  }

  /**
   * `POST /v1/relay/identities`: queues a relayed identity registration, signed for its current nonce and
   * naming this hub's relayer (the relay quote's `relayer`): the Registry accepts it only from the relayer
   * it names, so no one can copy it from the mempool and take the fee. The relayer fee must cover the gas
   * at the current price (a quote's margin absorbs a rise), and the identity must be able to pay it: the
   * Registry takes it from the identity's tokens with `transferFrom`, so its balance must hold it, and its
   * allowance to the Registry too, unless the request carries the identity's EIP-2612 permit of the fee
   * to the Registry: the relayer submits that first (so an identity with tokens and no gas registers), for
   * a fee that covers both transactions.
   */
  async relayIdentity(request: RelayIdentityRequest): Promise<SettlementView> {
    const { registry, token } = await this.chain.hubInfo();
    const nonce = await this.registryNonce(registry, request.identity);
    const valid = await verifyTypedData({
      address: request.identity,
      domain: registryDomain({ registry, chainId: this.scope.chainId }),
      types: registerIdentityTypes,
      primaryType: 'RegisterIdentity',
      message: {
        identity: request.identity,
        beneficiary: request.beneficiary,
        relayerFee: request.relayerFee,
        relayer: this.relayer,
        nonce,
      },
      signature: request.signature,
    }).catch(() => false);
    if (!valid) {
      throw new HubError(
        'INVALID_SIGNATURE',
        'The registration is not signed by the identity for its current nonce and this hub’s relayer',
        { identity: getAddress(request.identity), nonce: nonce.toString(), relayer: this.relayer },
      );
    }
    const id = settlementId.identity(request.identity, nonce);
    const existing = await this.settlements.get(id);
    if (existing && existing.status !== 'failed') return view(existing);
    const { permit } = request;
    await this.requireRelayerFee(permit ? 'identity-permit' : 'identity', request.relayerFee);
    if (permit) await this.requirePermit(token, registry, request.identity, request.relayerFee, permit);
    if (request.relayerFee > 0n) {
      await this.requirePayable(token, registry, request.identity, request.relayerFee, permit !== undefined);
    }
    const row = await this.createOrRequeue({
      id,
      kind: 'identity',
      subject: request.identity,
      amount: nonce,
      payload: {
        registry,
        beneficiary: request.beneficiary,
        relayerFee: request.relayerFee.toString(),
        nonce: nonce.toString(),
        signature: request.signature,
        ...(permit && { permit: { deadline: permit.deadline.toString(), signature: permit.signature } }),
      },
    });
    return view(row);
  }

  /**
   * `POST /v1/relay/beneficiaries`: queues a relayed beneficiary change, signed for the current nonce.
   * `Registry.setBeneficiaryFor` pays the relayer nothing, so the change is relayed only while the gas
   * costs the hub nothing in tokens (RELAYER_TOKENS_PER_WEI 0, or a free chain); else RELAYER_FEE_TOO_LOW.
   */
  async relayBeneficiary(request: RelayBeneficiaryRequest): Promise<SettlementView> {
    const { registry } = await this.chain.hubInfo();
    const nonce = await this.registryNonce(registry, request.identity);
    const valid = await verifyTypedData({
      address: request.identity,
      domain: registryDomain({ registry, chainId: this.scope.chainId }),
      types: setBeneficiaryTypes,
      primaryType: 'SetBeneficiary',
      message: { identity: request.identity, beneficiary: request.beneficiary, nonce },
      signature: request.signature,
    }).catch(() => false);
    if (!valid) {
      throw new HubError('INVALID_SIGNATURE', 'The change is not signed by the identity for its current nonce', {
        identity: getAddress(request.identity),
        nonce: nonce.toString(),
      });
    }
    const id = settlementId.beneficiary(request.identity, nonce);
    const existing = await this.settlements.get(id);
    if (existing && existing.status !== 'failed') return view(existing);
    await this.requireRelayerFee('beneficiary', 0n);
    const row = await this.createOrRequeue({
      id,
      kind: 'beneficiary',
      subject: request.identity,
      amount: nonce,
      payload: { registry, beneficiary: request.beneficiary, nonce: nonce.toString(), signature: request.signature },
    });
    return view(row);
  }

  /** Gas of a relayed Registry action: a registration with a permit is two transactions. */
  private async relayGas(kind: RelayKind): Promise<bigint> {
    return kind === 'identity-permit'
      ? (await this.claims.gasPerPromise('identity')) + PERMIT_GAS
      : this.claims.gasPerPromise(kind);
  }

  /**
   * Refuses a relayed Registry action whose fee is below its gas cost at the current price (the quote
   * without its margin, as for settlement requests): RELAYER_FEE_TOO_LOW with that minimum.
   */
  private async requireRelayerFee(kind: RelayKind, relayerFee: bigint): Promise<void> {
    const [gasPrice, gas] = await Promise.all([getGasPrice(this.chain.client), this.relayGas(kind)]);
    requireRelayFee(
      kind,
      relayerFee,
      minimumRelayerFee({ gasPrice, gasPerPromise: gas, rate: this.options.tokenRate }),
    );
  }

  /**
   * Refuses a permit the token would not take: one that is not the identity's EIP-2612 permit of exactly
   * the relayer fee to the Registry for its current token nonce, or that expires within
   * PERMIT_MARGIN_SECONDS of block time: INVALID_SIGNATURE.
   */
  private async requirePermit(
    token: Address,
    registry: Address,
    identity: Hex,
    relayerFee: bigint,
    permit: { deadline: bigint; signature: Hex },
  ): Promise<void> {
    const client = this.chain.client;
    const [[, name, version, chainId, verifyingContract], nonce, block] = await Promise.all([
      readContract(client, { address: token, abi: chitTokenAbi, functionName: 'eip712Domain' }),
      readContract(client, { address: token, abi: chitTokenAbi, functionName: 'nonces', args: [identity] }),
      getBlock(client, { blockTag: 'latest' }),
    ]);
    requirePermitDeadline(permit.deadline, block.timestamp);
    const valid = await verifyTypedData({
      address: identity,
      domain: { name, version, chainId, verifyingContract },
      types: PERMIT_TYPES,
      primaryType: 'Permit',
      message: { owner: identity, spender: registry, value: relayerFee, nonce, deadline: permit.deadline },
      signature: permit.signature,
    }).catch(() => false);
    if (!valid) {
      throw new HubError(
        'INVALID_SIGNATURE',
        'The permit is not the identity’s EIP-2612 permit of the relayer fee to the Registry for its current token nonce',
        {
          identity: getAddress(identity),
          spender: getAddress(registry),
          value: relayerFee.toString(),
          nonce: nonce.toString(),
        },
      );
    }
  }

  /**
   * Refuses a relayer fee the Registry could not take from `identity`: its balance is short, or its
   * allowance to the Registry is and no permit comes with the request.
   */
  private async requirePayable(
    token: Address,
    registry: Address,
    identity: Hex,
    relayerFee: bigint,
    permitted = false,
  ): Promise<void> {
    const [balance, allowance] = await multicall(this.chain.client, {
      allowFailure: false,
      deployless: true,
      contracts: [
        { address: token, abi: erc20Abi, functionName: 'balanceOf', args: [identity] },
        { address: token, abi: erc20Abi, functionName: 'allowance', args: [identity, registry] },
      ],
    });
    requirePayable({ relayerFee, balance, allowance, permitted, token, registry });
  }

  private registryNonce(registry: Address, identity: Hex): Promise<bigint> {
    return readContract(this.chain.client, {
      address: registry,
      abi: registryAbi,
      functionName: 'nonces',
      args: [identity],
    });
  }

  /** Records a new settlement and queues it; a failed one is queued again; any other is left as it is. */
  private async createOrRequeue(settlement: NewSettlement): Promise<SettlementRecord> {
    const { row, queued } = await this.repository.createOrRequeue(settlement);
    if (queued) await this.queue.enqueue([row]);
    return row;
  }
}
