import {
  ContractRevertError,
  chitTokenAbi,
  decodeContractError,
  getConsumerChannel,
  getProviderChannel,
  type HubScope,
  hubAbi,
  hubPromiseDigestBytes,
  registerIdentityRelayed,
  registerIdentityTypes,
  registryAbi,
  registryDomain,
  type SignedConsumerPromise,
  type SignedHubPromise,
  setBeneficiaryRelayed,
  setBeneficiaryTypes,
  settleConsumers,
  settlementAuthorizationDigest,
  settleProviders,
  toConsumerClaim,
  toProviderClaim,
  verifyConsumerPromise,
  waitForTransaction,
} from '@chit/sdk';
import { nativePreimageOpener, nativeVerifier } from '@chit/sdk/node';
import { Logger } from '@nestjs/common';
import {
  type Address,
  BaseError,
  BlockNotFoundError,
  ContractFunctionRevertedError,
  erc20Abi,
  getAddress,
  hexToBytes,
  keccak256,
  type LocalAccount,
  parseEventLogs,
  parseSignature,
  type TransactionReceipt,
  verifyTypedData,
} from 'viem';
import {
  getBlock,
  getBlockNumber,
  getGasPrice,
  multicall,
  readContract,
  simulateContract,
  writeContract,
} from 'viem/actions';
import type { ChainService } from '../chain/chain.service';
import type { OutboxRepository } from '../chain/outbox/outbox.repository';
import type { TransactionSender } from '../chain/outbox/transaction-sender';
import type { OperatorSigner } from '../crypto/operator-signer';
import type { Hex } from '../db/bytes';
import { HubError } from '../errors/hub-error';
import { messageOf } from '../errors/message-of';
import type { ExchangeRecord } from '../exchange/exchange.rules';
import type { SettlementRepository } from '../repositories/settlement.repository';
import { Batcher, type BatchOutcome } from './batcher';
import {
  decodeBody,
  decodeSettlementId,
  quoteQuerySchema,
  relayBeneficiarySchema,
  relayIdentitySchema,
  relayQuoteQuerySchema,
  settlementRequestSchema,
} from './settlement.dto';
import { PermanentFault, ShuttingDown, TransactionLostError } from './settlement.errors';
import {
  classifyRevert,
  consumerClaimWorthIt,
  DEFAULT_GAS_PER_PROMISE,
  gasCostInTokens,
  hubFeeOf,
  minimumRelayerFee,
  PERMIT_GAS,
  providerSettlementDue,
  quoteRelayerFee,
  settlementId,
  type TokenRate,
  waitForFreeFunds,
} from './settlement.policy';
import {
  type IdentityPayload,
  type JobContext,
  type NewSettlement,
  OPEN_STATUSES,
  type SettlementKind,
  type SettlementOf,
  type SettlementQueue,
  type SettlementRecord,
  type SettlementView,
  view,
} from './settlement.types';

export interface SettlementServiceOptions {
  batchSize: number;
  batchWindowMs: number;
  /** Most settlements one scan creates. */
  scanLimit: number;
  providerThreshold: bigint;
  maxFeeShareBps: number;
  relayerFeeMarginBps: number;
  tokenRate: TokenRate;
  quoteValiditySeconds: number;
  /** How long a replica holds the settlements of a batch it is sending. */
  leaseMs: number;
  /** Blocks on top of the including one before a transaction counts as confirmed (CONFIRMATIONS). */
  confirmations: number;
}

interface ConsumerItem {
  id: string;
  row: SettlementRecord;
  promise: SignedConsumerPromise;
  preimage: Hex;
}

interface ProviderItem {
  id: string;
  row: SettlementRecord;
  promise: SignedHubPromise;
  preimage: Hex;
  relayer: { fee: bigint; authorization: Hex } | undefined;
  context: JobContext;
}

/** Hub promises of a provider tried when matching a settlement authorization (the latest first). */
const AUTHORIZATION_LOOKBACK = 16;
const GAS_CACHE_MS = 60_000;
/** Blocks below the confirmed depth in which the reconciler looks for confirmed transactions a reorg took away. */
const REORG_RECHECK_BLOCKS = 64n;
/** Transactions (and settlements) one look for reorged settlements checks at most. */
const REORG_RECHECK_LIMIT = 500;

/**
 * The settlement rules: what is due and when, quotes, provider settlement requests,
 * relayed Registry actions, and what each job does with its settlement: batch it into one transaction
 * with the others due, follow that transaction until it has its confirmations, and record the outcome
 * of every claim it carried. The settlements table is the truth; jobs only point at its rows.
 */
export class SettlementService {
  private readonly verifier = nativeVerifier();
  /** Opens the boxes of exchanges recorded before the hub opened them at exchange time. */
  private readonly openBox: (box: Hex) => Hex | undefined;
  private readonly consumerBatcher: Batcher<ConsumerItem, void>;
  private readonly providerBatcher: Batcher<ProviderItem, void>;
  private readonly gasCache = new Map<SettlementKind, { at: number; gas: bigint }>();
  /** Transactions being followed here, so that the jobs of one batch share one follower. */
  private readonly concluding = new Map<Hex, Promise<void>>();
  private readonly logger = new Logger('SettlementService');
  private queue: SettlementQueue | undefined;
  /** The account that sends the settlements (RELAYER_KEY's, else OPERATOR_KEY's): the one a provider's
   * SettlementAuthorization names, since the Hub checks it against the transaction's sender. */
  private readonly relayer: Address;

  constructor(
    private readonly scope: HubScope,
    private readonly chain: ChainService,
    private readonly repository: SettlementRepository,
    private readonly outbox: OutboxRepository,
    private readonly sender: TransactionSender,
    private readonly signer: OperatorSigner,
    private readonly options: SettlementServiceOptions,
  ) {
    this.openBox = nativePreimageOpener(signer.privateKey);
    this.relayer = getAddress(sender.address);
    const batching = { maxBatch: options.batchSize, windowMs: options.batchWindowMs };
    this.consumerBatcher = new Batcher((items) => this.runConsumerBatch(items), batching);
    this.providerBatcher = new Batcher((items) => this.runProviderBatch(items), batching);
  }

  /** Connects the queues the service hands new settlements to. */
  attach(queue: SettlementQueue): void {
    this.queue = queue;
  }

  /** Stops batching: waiting claims go back to their queue. */
  close(): void {
    this.consumerBatcher.close();
    this.providerBatcher.close();
  }

  // ------------------------------------------------------------------ API

  /** `GET /v1/quotes/settlement`: what settling the provider's latest hub promise through the relayer costs now. */
  async quote(query: unknown) {
    const { provider } = decodeBody(quoteQuerySchema, query);
    const [latest] = await this.repository.providerExchanges(provider, 1);
    if (!latest) throw unknownProvider(provider);
    const [settled, info, gasPrice, gasPerPromise] = await Promise.all([
      this.providerSettled(provider),
      this.chain.hubInfo(),
      getGasPrice(this.chain.client),
      this.gasPerPromise('provider'),
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
   * `GET /v1/quotes/relay?kind=identity|identity-permit|beneficiary`: the relayer fee the hub asks now
   * for relaying a registration (`identity-permit`: a registration whose fee the relayer collects with
   * the identity's EIP-2612 permit, which it submits first) or a beneficiary change, computed like the
   * settlement quote (gas of the transactions x gas price x the margin, in token units). The Registry pays
   * no relayer fee for a beneficiary change, so its quote is what the hub would need and cannot be paid:
   * the hub relays those only when it is 0.
   */
  async relayQuote(query: unknown) {
    const { kind } = decodeBody(relayQuoteQuerySchema, query);
    const [gasPrice, gas] = await Promise.all([getGasPrice(this.chain.client), this.relayGas(kind)]);
    return {
      kind,
      relayerFee: quoteRelayerFee({
        gasPrice,
        gasPerPromise: gas,
        marginBps: this.options.relayerFeeMarginBps,
        rate: this.options.tokenRate,
      }),
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
  async requestProviderSettlement(body: unknown): Promise<SettlementView> {
    const { provider, relayerFee, authorization } = decodeBody(settlementRequestSchema, body);
    const exchanges = await this.repository.providerExchanges(provider, AUTHORIZATION_LOOKBACK);
    if (exchanges.length === 0) throw unknownProvider(provider);
    const exchange = exchanges.find(
      (candidate) =>
        this.verifier.recover(
          hexToBytes(settlementAuthorizationDigest(this.hubPromise(candidate), relayerFee, this.relayer)),
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
    const existing = await this.repository.get(id);
    if (existing && existing.status !== 'failed') return view(existing);

    const settled = await this.providerSettled(provider);
    if (exchange.hubTotal <= settled) {
      throw new HubError('NOTHING_TO_SETTLE', 'This hub promise is settled already', {
        total: exchange.hubTotal.toString(),
        settled: settled.toString(),
      });
    }
    const [info, gasPrice, gasPerPromise] = await Promise.all([
      this.chain.hubInfo(),
      getGasPrice(this.chain.client),
      this.gasPerPromise('provider'),
    ]);
    const amount = exchange.hubTotal - settled;
    const net = amount - hubFeeOf(amount, info.fee);
    if (relayerFee > net) {
      throw new HubError('RELAYER_FEE_TOO_HIGH', 'The relayer fee is more than the provider would be paid', {
        relayerFee: relayerFee.toString(),
        payout: net.toString(),
      });
    }
    const minimum = minimumRelayerFee({ gasPrice, gasPerPromise, rate: this.options.tokenRate });
    if (relayerFee < minimum) {
      throw new HubError('RELAYER_FEE_TOO_LOW', 'The relayer fee does not cover the gas: ask for a new quote', {
        relayerFee: relayerFee.toString(),
        minimum: minimum.toString(),
      });
    }
    if (!(await this.preimageOf(exchange))) {
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

  /** `GET /v1/settlements/{id}`: the id with its address in either form; the answer has the canonical id. */
  async settlement(param: string): Promise<SettlementView> {
    const id = decodeSettlementId(param);
    const row = await this.repository.get(id);
    if (!row) throw new HubError('NOT_FOUND', `No settlement ${id}`, { id });
    return view(row);
  }

  /**
   * `POST /v1/relay/identities`: queues a relayed identity registration, signed for its current nonce.
   * The relayer fee must cover the gas at the current price (a quote's margin absorbs a rise), and the
   * identity must be able to pay it: the Registry takes it from the identity's tokens with
   * `transferFrom`, so its balance must hold it, and its allowance to the Registry too, unless the
   * request carries the identity's EIP-2612 permit of the fee to the Registry: the relayer submits that
   * first (so an identity with tokens and no gas registers), for a fee that covers both transactions.
   */
  async relayIdentity(body: unknown): Promise<SettlementView> {
    const request = decodeBody(relayIdentitySchema, body);
    const { registry, token } = await this.chain.hubInfo();
    const nonce = await this.registryNonce(registry, request.identity);
    const valid = await verifyTypedData({
      address: request.identity,
      domain: registryDomain({ registry, chainId: this.scope.chainId }),
      types: registerIdentityTypes,
      primaryType: 'RegisterIdentity',
      message: { identity: request.identity, beneficiary: request.beneficiary, relayerFee: request.relayerFee, nonce },
      signature: request.signature,
    }).catch(() => false);
    if (!valid) {
      throw new HubError('INVALID_SIGNATURE', 'The registration is not signed by the identity for its current nonce', {
        identity: getAddress(request.identity),
        nonce: nonce.toString(),
      });
    }
    const id = settlementId.identity(request.identity, nonce);
    const existing = await this.repository.get(id);
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
  async relayBeneficiary(body: unknown): Promise<SettlementView> {
    const request = decodeBody(relayBeneficiarySchema, body);
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
    const existing = await this.repository.get(id);
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

  // ------------------------------------------------------------------ scans and chain events

  /**
   * Creates a settlement for every consumer due: its highest promise is above what it settled, its R is
   * known (revealed, or opened from the box; else the highest promise whose R is), and it collects more
   * than its gas (always when it is exiting). Exiting consumers' settlements are urgent. Returns how
   * many it created.
   */
  async collectDueConsumers(only?: Hex, urgent = false): Promise<number> {
    const due = await this.repository.dueConsumers(this.options.scanLimit, only);
    if (due.length === 0) return 0;
    const gasCost = gasCostInTokens(
      await this.gasPerPromise('consumer'),
      await getGasPrice(this.chain.client),
      this.options.tokenRate,
    );
    const normal: NewSettlement[] = [];
    const exiting: NewSettlement[] = [];
    for (const candidate of due) {
      // The highest promise, or, while its R is unknown, the highest one whose R is.
      const exchange = (await this.preimageOf(candidate.exchange))
        ? candidate.exchange
        : await this.repository.bestRevealedExchange(candidate.consumer, candidate.settled);
      if (!exchange) continue;
      const total = exchange.consumerTotal;
      const owed = total - candidate.settled;
      const isExiting = urgent || candidate.exitReadyAt !== null;
      if (!consumerClaimWorthIt({ collectable: min(owed, candidate.balance), gasCost, exiting: isExiting })) continue;
      (isExiting ? exiting : normal).push({
        id: settlementId.consumer(candidate.consumer, total),
        kind: 'consumer',
        subject: candidate.consumer,
        amount: total,
        payload: { hashlock: exchange.hashlock },
      });
    }
    const created = await this.repository.insert([...exiting, ...normal]);
    const urgentIds = new Set(exiting.map((s) => s.id));
    await this.queue?.enqueue(
      created.filter((s) => urgentIds.has(s.id)),
      { urgent: true },
    );
    await this.queue?.enqueue(created.filter((s) => !urgentIds.has(s.id)));
    return created.length;
  }

  /** Creates the settlements the hub makes itself for providers over the threshold (policy). */
  async collectDueProviders(): Promise<number> {
    if (this.options.providerThreshold === 0n) return 0;
    const due = await this.repository.dueProviders(this.options.providerThreshold, this.options.scanLimit);
    if (due.length === 0) return 0;
    const gasCost = gasCostInTokens(
      await this.gasPerPromise('provider'),
      await getGasPrice(this.chain.client),
      this.options.tokenRate,
    );
    const rows: NewSettlement[] = [];
    for (const candidate of due) {
      const unsettled = candidate.promised - candidate.settled;
      const policy = {
        unsettled,
        threshold: this.options.providerThreshold,
        gasCost,
        maxFeeShareBps: this.options.maxFeeShareBps,
      };
      if (!providerSettlementDue(policy) || !(await this.preimageOf(candidate.exchange))) continue;
      rows.push({
        id: settlementId.provider(candidate.provider, candidate.promised),
        kind: 'provider',
        subject: candidate.provider,
        amount: candidate.promised,
        payload: { hashlock: candidate.exchange.hashlock, relayerFee: '0', authorization: null },
      });
    }
    const created = await this.repository.insert(rows);
    await this.queue?.enqueue(created);
    return created.length;
  }

  /** A consumer asked to exit: its promises must be settled before the exit can be finalized. */
  async onExitRequested(consumer: Hex): Promise<void> {
    await this.collectDueConsumers(consumer, true);
    this.consumerBatcher.flush();
  }

  /** Someone's settlement was applied by the chain follower: the open settlements it covers are done. */
  async onSettled(kind: 'consumer' | 'provider', subject: Hex, total: bigint, txHash: Hex): Promise<void> {
    const ids = await this.repository.confirmSettledUpTo(kind, subject, total, txHash);
    if (ids.length > 0) this.logger.log(`confirmed by ${txHash} on-chain: ${ids.join(', ')}`);
  }

  /** The follower rewound to `block` after a reorg: what it took away of the confirmed settlements is sent again. */
  async onRewound(block: bigint): Promise<void> {
    await this.reopenReorged(block);
  }

  /**
   * Puts back in the pipeline the confirmed settlements a reorg took away, the same rows, so that
   * they are sent again and counted once: those whose transaction of the hub is no longer in the
   * block it was mined in (after `after`, the block the follower rewound to; without it, in the last
   * blocks a reorg the follower did not see could reach: the reconciler's look). After a rewind also
   * the consumer and provider settlements confirmed (by an event, or by another party) above what the
   * rewound books say is settled, that the chain has not settled either. Returns how many.
   */
  async reopenReorged(after?: bigint): Promise<number> {
    const since =
      after ??
      (await getBlockNumber(this.chain.client, { cacheTime: 0 })) -
        BigInt(this.options.confirmations) -
        REORG_RECHECK_BLOCKS;
    const reopened: SettlementRecord[] = [];
    const blocks = new Map<bigint, Set<string> | null>();
    for (const tx of await this.repository.minedCarryingConfirmed(since, REORG_RECHECK_LIMIT)) {
      if ((await this.inBlock(tx.hash, tx.block, blocks)) !== false) continue;
      const reason = `transaction ${tx.hash} is no longer in block ${tx.block} (reorg): sending it again`;
      reopened.push(...(await this.repository.reopenReorged(tx.hash, tx.block, reason)));
    }
    for (const row of after === undefined ? [] : await this.repository.confirmedAboveBooks(REORG_RECHECK_LIMIT)) {
      const settled =
        row.kind === 'consumer'
          ? (await getConsumerChannel(this.chain.client, { hub: this.scope.hub, consumer: row.subject })).settled
          : await this.providerSettled(row.subject);
      if (settled >= row.amount) continue;
      const reason = `settled ${settled} on-chain, below ${row.amount} (reorg): settling it again`;
      const back = await this.repository.reopenUnsettled(row.id, reason);
      if (back) reopened.push(back);
    }
    if (reopened.length === 0) return 0;
    this.logger.warn(`reorg: ${reopened.map((row) => row.id).join(', ')} no longer settled on-chain, sent again`);
    await this.queue?.enqueue(reopened, { urgent: true });
    return reopened.length;
  }

  /**
   * Whether the canonical block `block` includes the transaction `hash` (false when the chain is
   * shorter); undefined when the node did not answer. `blocks` caches the blocks' transactions.
   */
  private async inBlock(
    hash: Hex,
    block: bigint,
    blocks: Map<bigint, Set<string> | null>,
  ): Promise<boolean | undefined> {
    if (!blocks.has(block)) {
      try {
        const found = await getBlock(this.chain.client, { blockNumber: block });
        blocks.set(block, new Set(found.transactions.map((tx) => tx.toLowerCase())));
      } catch (error) {
        if (!(error instanceof BlockNotFoundError)) return undefined;
        blocks.set(block, null);
      }
    }
    return blocks.get(block)?.has(hash.toLowerCase()) ?? false;
  }

  /** A deposit: consumer settlements that failed on an empty channel can collect again. */
  async onDeposited(consumer: Hex): Promise<void> {
    const requeued = await this.repository.requeueFailedConsumer(consumer);
    await this.queue?.enqueue(requeued);
  }

  // ------------------------------------------------------------------ jobs

  /**
   * What a job does with its settlement: nothing when it is confirmed or failed; follow its
   * transaction when one carries it; otherwise send it (consumers and providers in batches).
   * Resolves with the settlement once it is confirmed or failed.
   *
   * @throws {PermanentFault} when it failed for good (it is marked failed); any other error when it
   * should be tried again (it is marked retrying by the caller).
   */
  async process(id: string, context: JobContext): Promise<SettlementRecord> {
    const row = await this.repository.get(id);
    if (!row) throw new PermanentFault(`no settlement ${id} in the books`);
    if (row.status === 'confirmed' || row.status === 'failed') return row;
    await this.repository.countAttempt(id);
    let failure: unknown;
    try {
      if (row.txHash && (await this.inFlight(row))) {
        // A transaction carries it already (this job was delivered again, or the hub restarted): follow it.
        await this.conclude(row.txHash);
      } else if (row.kind === 'consumer') {
        const { promise, preimage } = await this.consumerClaim(row);
        await this.consumerBatcher.submit({ id, row, promise, preimage }, context.urgent);
      } else if (row.kind === 'provider') {
        const claim = await this.providerClaim(row);
        await this.providerBatcher.submit({ id, row, ...claim, context }, context.urgent);
      } else {
        await this.relay(row);
      }
    } catch (error) {
      if (error instanceof ShuttingDown || error instanceof PermanentFault) throw error;
      failure = error;
    }
    const after = await this.repository.get(id);
    if (after?.status === 'confirmed') return after;
    if (after?.status === 'failed') throw new PermanentFault(after.error ?? 'failed');
    throw failure ?? new Error(after?.error ?? `settlement ${id} is still ${after?.status}`);
  }

  /**
   * Whether the transaction that carries `row` may still settle it: an attempt with its nonce is
   * pending, or one was mined and the outcome is not recorded yet (the hub stopped in between).
   */
  private async inFlight(row: SettlementRecord): Promise<boolean> {
    const carrier = row.txHash ? await this.outbox.transaction(row.txHash) : undefined;
    if (!carrier) return false;
    const attempts = await this.outbox.transactionsWithNonce(carrier.sender, carrier.nonce);
    return attempts.some(
      (attempt) => attempt.status === 'pending' || (attempt.status === 'mined' && row.status === 'submitted'),
    );
  }

  /** Marks a settlement retrying (its job will run again) or failed (its job has given up). */
  async recordFailure(id: string, error: unknown, final: boolean): Promise<void> {
    const message = messageOf(error);
    if (final) await this.repository.markFailed(id, message);
    else await this.repository.markRetrying(id, message);
  }

  private async runConsumerBatch(items: ConsumerItem[]): Promise<Map<string, BatchOutcome<void>>> {
    return this.runBatch(items, 'consumer', async (carriers, all) => {
      const { hash } = await this.sendIsolating(
        'consumer',
        carriers,
        all,
        (batch, account) =>
          settleConsumers(this.sender.wallet, {
            hub: this.scope.hub,
            account,
            claims: batch.map(({ promise, preimage }) => ({ promise, preimage })),
          }),
        (item) => ({ functionName: 'settleConsumers', args: [[toConsumerClaim(item.promise, item.preimage)]] }),
      );
      await this.conclude(hash);
    });
  }

  private async runProviderBatch(items: ProviderItem[]): Promise<Map<string, BatchOutcome<void>>> {
    return this.runBatch(items, 'provider', async (carriers, all) => {
      // Paying out more than the free funds takes the rest from the stake and punishes the hub: let the
      // consumer settlements that back these promises land first, for a while.
      const [info, settled] = await Promise.all([
        this.chain.hubInfo(),
        this.providersSettled(carriers.map((c) => c.promise.provider.toLowerCase() as Hex)),
      ]);
      let outflow = 0n;
      carriers.forEach((carrier, i) => {
        const amount = carrier.promise.total > settled[i]! ? carrier.promise.total - settled[i]! : 0n;
        outflow += amount - hubFeeOf(amount, info.fee);
      });
      const attempt = Math.max(...carriers.map((c) => c.context.attempt));
      const attempts = Math.max(...carriers.map((c) => c.context.attempts));
      if (waitForFreeFunds({ freeFunds: info.freeFunds, outflow, attempt, attempts })) {
        await this.queue?.collectConsumersSoon();
        throw new Error(
          `the hub's free funds (${info.freeFunds}) do not cover ${outflow} yet: consumer settlements first`,
        );
      }
      const { hash } = await this.sendIsolating(
        'provider',
        carriers,
        all,
        (batch, account) =>
          settleProviders(this.sender.wallet, {
            hub: this.scope.hub,
            account,
            claims: batch.map(({ promise, preimage, relayer }) => ({ promise, preimage, relayer })),
          }),
        (item) => ({
          functionName: 'settleProviders',
          args: [[toProviderClaim(item.promise, item.preimage, item.relayer)]],
        }),
      );
      await this.conclude(hash);
    });
  }

  /**
   * The common part of a batch: lease its settlements (one leased by another replica waits for its
   * job's next attempt), let the highest claim of each channel carry the lower ones, run `send`, and
   * give each job its outcome.
   */
  private async runBatch<Item extends { id: string; row: SettlementRecord }>(
    items: Item[],
    kind: 'consumer' | 'provider',
    send: (carriers: Item[], all: Item[]) => Promise<void>,
  ): Promise<Map<string, BatchOutcome<void>>> {
    const outcomes = new Map<string, BatchOutcome<void>>();
    const leased = new Set(
      await this.repository.lease(
        items.map((item) => item.id),
        this.options.leaseMs,
      ),
    );
    const mine: Item[] = [];
    for (const item of items) {
      if (leased.has(item.id)) mine.push(item);
      else outcomes.set(item.id, { ok: false, error: new Error('another replica is sending this settlement') });
    }
    const carriers = new Map<Hex, Item>();
    for (const item of mine) {
      const best = carriers.get(item.row.subject);
      if (!best || item.row.amount > best.row.amount) carriers.set(item.row.subject, item);
    }
    try {
      if (carriers.size > 0) await send([...carriers.values()], mine);
      for (const item of mine) outcomes.set(item.id, { ok: true, value: undefined });
    } catch (error) {
      if (!(error instanceof ShuttingDown)) this.logger.warn(`${kind} batch of ${mine.length}: ${messageOf(error)}`);
      for (const item of mine) if (!outcomes.has(item.id)) outcomes.set(item.id, { ok: false, error });
    } finally {
      await this.repository.releaseLease(mine.map((item) => item.id));
    }
    return outcomes;
  }

  /**
   * Sends `carriers` in one transaction (recording all of `all` as carried by it). When the simulation
   * reverts for a batch of several, each claim is simulated alone: the ones that revert fail (or are
   * found settled) on their own, and the rest go out together.
   */
  private async sendIsolating<Item extends { id: string; row: SettlementRecord }>(
    kind: 'consumer' | 'provider',
    carriers: Item[],
    all: Item[],
    action: (batch: Item[], account: LocalAccount) => Promise<{ hash: Hex }>,
    single: (item: Item) => { functionName: 'settleConsumers' | 'settleProviders'; args: readonly unknown[] },
  ): Promise<{ hash: Hex }> {
    const carried = (batch: Item[]) => {
      const subjects = new Set(batch.map((item) => item.row.subject));
      return all.filter((item) => subjects.has(item.row.subject)).map((item) => item.id);
    };
    const send = (batch: Item[]) =>
      this.sender.send({ kind, claims: batch.length, settlementIds: carried(batch) }, (account) =>
        action(batch, account),
      );
    try {
      return await send(carriers);
    } catch (error) {
      if (!(error instanceof ContractRevertError)) throw error;
      const survivors: Item[] = [];
      for (const item of carriers) {
        const revert = carriers.length === 1 ? error : await this.simulateAlone(single(item));
        if (!revert) survivors.push(item);
        else await this.settleOnRevert(kind, carried([item]), revert);
      }
      if (survivors.length === 0 || survivors.length === carriers.length) throw error;
      return send(survivors);
    }
  }

  private async simulateAlone(call: {
    functionName: 'settleConsumers' | 'settleProviders';
    args: readonly unknown[];
  }): Promise<ContractRevertError | undefined> {
    try {
      await simulateContract(this.chain.client, {
        account: this.sender.address,
        address: this.scope.hub,
        abi: hubAbi,
        // biome-ignore lint/suspicious/noExplicitAny: one claim of the batch's own function
        ...(call as any),
      });
      return undefined;
    } catch (error) {
      const decoded = decodeContractError(error);
      return decoded instanceof ContractRevertError ? decoded : undefined;
    }
  }

  /** Records what a revert means for the settlements of one channel. */
  private async settleOnRevert(kind: SettlementKind, ids: string[], revert: ContractRevertError): Promise<void> {
    const verdict = classifyRevert(revert.errorName);
    for (const id of ids) {
      if (verdict === 'permanent') await this.repository.markFailed(id, revert.shortMessage);
      else if (verdict === 'settled')
        await this.repository.markConfirmed(id, null, { settledBy: 'another transaction' });
      else await this.repository.markRetrying(id, revert.shortMessage);
    }
    this.logger.warn(`${kind} ${ids.join(', ')}: ${revert.shortMessage} (${verdict})`);
  }

  /**
   * Follows the transaction `hash` (or its replacement) to its confirmations and records the outcome of
   * every settlement it carries: confirmed with its events, settled by someone else, failed, or retrying.
   */
  private conclude(hash: Hex): Promise<void> {
    let running = this.concluding.get(hash);
    if (!running) {
      running = this.followAndRecord(hash).finally(() => this.concluding.delete(hash));
      this.concluding.set(hash, running);
    }
    return running;
  }

  private async followAndRecord(hash: Hex): Promise<void> {
    let receipt: TransactionReceipt;
    try {
      receipt = await this.sender.confirm(hash);
    } catch (error) {
      if (error instanceof TransactionLostError) {
        for (const row of await this.repository.settlementsOfTransactions([hash])) {
          if (OPEN_STATUSES.includes(row.status)) await this.repository.markRetrying(row.id, error.message);
        }
      }
      throw error;
    }
    const mined = receipt.transactionHash.toLowerCase() as Hex;
    if ((await this.outbox.transaction(mined))?.status !== 'mined') {
      // A reorg took it away between its confirmations and now: its settlements stay open and are followed again.
      throw new Error(`transaction ${mined} is no longer on the chain (reorg)`);
    }
    const rows = (await this.repository.settlementsOfTransactions([mined])).filter((row) =>
      OPEN_STATUSES.includes(row.status),
    );
    if (receipt.status === 'reverted') {
      let revert: unknown;
      try {
        await waitForTransaction(this.chain.client, { hash: mined });
      } catch (error) {
        revert = error;
      }
      for (const row of rows) {
        if (revert instanceof ContractRevertError && row.kind !== 'consumer' && row.kind !== 'provider') {
          await this.settleOnRevert(row.kind, [row.id], revert);
        } else if (revert instanceof ContractRevertError && classifyRevert(revert.errorName) === 'permanent') {
          await this.repository.markFailed(row.id, revert.shortMessage);
        } else {
          // The state moved between the simulation and the block: look at the channel again next time.
          await this.repository.markRetrying(row.id, `transaction ${mined} reverted: ${messageOf(revert)}`);
        }
      }
      return;
    }
    const logs = parseEventLogs({ abi: hubAbi, logs: receipt.logs, strict: false });
    for (const row of rows) {
      if (row.kind === 'identity' || row.kind === 'beneficiary') {
        await this.repository.markConfirmed(row.id, mined, { block: receipt.blockNumber.toString() });
        continue;
      }
      const event = logs.find((log) => {
        if (log.address.toLowerCase() !== this.scope.hub.toLowerCase()) return false;
        const args = log.args as { consumer?: string; provider?: string; total?: bigint };
        const subject = row.kind === 'consumer' ? args.consumer : args.provider;
        const name = row.kind === 'consumer' ? 'ConsumerSettled' : 'ProviderSettled';
        return (
          log.eventName === name &&
          subject?.toLowerCase() === row.subject &&
          args.total !== undefined &&
          args.total >= row.amount
        );
      });
      if (event) {
        await this.repository.markConfirmed(row.id, mined, {
          block: receipt.blockNumber.toString(),
          ...stringify(event.args as Record<string, unknown>),
        });
        continue;
      }
      // Skipped by the contract: settled by an earlier transaction, or nothing left in the channel.
      const settled =
        row.kind === 'consumer'
          ? (await getConsumerChannel(this.chain.client, { hub: this.scope.hub, consumer: row.subject })).settled
          : await this.providerSettled(row.subject);
      if (settled >= row.amount) {
        await this.repository.markConfirmed(row.id, null, { settledBy: 'another transaction' });
      } else if (row.kind === 'consumer') {
        await this.repository.markFailed(
          row.id,
          `the channel of ${getAddress(row.subject)} is empty: nothing to collect`,
        );
      } else {
        await this.repository.markRetrying(row.id, `transaction ${mined} did not settle it`);
      }
    }
  }

  /** Relays one Registry action (its own transaction; a registration's permit first, in one of its own). */
  private async relay(row: SettlementOf<'identity' | 'beneficiary'>): Promise<void> {
    const identity = getAddress(row.subject);
    if (row.kind === 'identity' && row.payload.permit)
      await this.submitPermit(identity, row.payload, row.payload.permit);
    const request = { kind: row.kind, claims: 1, settlementIds: [row.id] };
    let hash: Hex;
    try {
      ({ hash } = await this.sender.send(request, (account) => {
        const { registry, beneficiary, nonce, signature } = row.payload;
        const { chainId } = this.scope;
        return row.kind === 'identity'
          ? registerIdentityRelayed(this.sender.wallet, {
              account,
              registration: {
                registry,
                chainId,
                identity,
                beneficiary,
                relayerFee: BigInt(row.payload.relayerFee ?? '0'),
                nonce: BigInt(nonce),
                signature,
              },
            })
          : setBeneficiaryRelayed(this.sender.wallet, {
              account,
              change: { registry, chainId, identity, beneficiary, nonce: BigInt(nonce), signature },
            });
      }));
    } catch (error) {
      if (error instanceof ContractRevertError && classifyRevert(error.errorName) !== 'transient') {
        throw new PermanentFault(error.shortMessage);
      }
      throw error;
    }
    await this.conclude(hash);
  }

  /**
   * Submits the identity's permit of the relayer fee to the Registry and waits for it, unless the
   * allowance holds the fee already (an earlier attempt's permit was mined): the registration's
   * `transferFrom` needs it. The transaction carries no settlement (the registration's comes next). A
   * permit the token refuses fails the registration for good.
   */
  private async submitPermit(identity: Address, p: IdentityPayload, permit: { deadline: string; signature: Hex }) {
    const relayerFee = BigInt(p.relayerFee ?? '0');
    const { token } = await this.chain.hubInfo();
    const allowance = () =>
      readContract(this.chain.client, {
        address: token,
        abi: erc20Abi,
        functionName: 'allowance',
        args: [identity, p.registry],
      });
    if (relayerFee === 0n || (await allowance()) >= relayerFee) return;
    const { r, s, v, yParity } = parseSignature(permit.signature);
    const call = {
      address: token,
      abi: chitTokenAbi,
      functionName: 'permit',
      args: [
        identity,
        p.registry,
        relayerFee,
        BigInt(permit.deadline),
        v === undefined ? 27 + yParity : Number(v),
        r,
        s,
      ],
    } as const;
    let hash: Hex;
    try {
      ({ hash } = await this.sender.send({ kind: 'identity', claims: 0, settlementIds: [] }, async (account) => {
        const { request } = await simulateContract(this.chain.client, { ...call, account });
        return { hash: await writeContract(this.sender.wallet, { ...request, chain: this.sender.wallet.chain }) };
      }));
    } catch (error) {
      const reverted = error instanceof BaseError && error.walk((e) => e instanceof ContractFunctionRevertedError);
      if (!reverted) throw error;
      if ((await allowance()) >= relayerFee) return;
      throw new PermanentFault(`the token refuses the identity's permit of the relayer fee: ${messageOf(error)}`);
    }
    const receipt = await this.sender.confirm(hash);
    if ((await allowance()) < relayerFee) {
      throw new PermanentFault(
        `the identity's permit of the relayer fee left the Registry's allowance short (transaction ${receipt.transactionHash}, ${receipt.status})`,
      );
    }
  }

  // ------------------------------------------------------------------ helpers

  /** Gas of a relayed Registry action: a registration with a permit is two transactions. */
  private async relayGas(kind: 'identity' | 'identity-permit' | 'beneficiary'): Promise<bigint> {
    return kind === 'identity-permit' ? (await this.gasPerPromise('identity')) + PERMIT_GAS : this.gasPerPromise(kind);
  }

  /**
   * Refuses a relayed Registry action whose fee is below its gas cost at the current price (the quote
   * without its margin, as for settlement requests): RELAYER_FEE_TOO_LOW with that minimum.
   */
  private async requireRelayerFee(
    kind: 'identity' | 'identity-permit' | 'beneficiary',
    relayerFee: bigint,
  ): Promise<void> {
    const [gasPrice, gas] = await Promise.all([getGasPrice(this.chain.client), this.relayGas(kind)]);
    const minimum = minimumRelayerFee({ gasPrice, gasPerPromise: gas, rate: this.options.tokenRate });
    if (relayerFee >= minimum) return;
    const message =
      kind === 'beneficiary'
        ? 'The Registry pays no relayer fee for a beneficiary change and its gas is not free here: send setBeneficiary yourself'
        : `The relayer fee does not cover the gas: ask for a new quote (GET /v1/quotes/relay?kind=${kind})`;
    throw new HubError('RELAYER_FEE_TOO_LOW', message, {
      relayerFee: relayerFee.toString(),
      minimum: minimum.toString(),
    });
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
    if (permit.deadline < block.timestamp + PERMIT_MARGIN_SECONDS) {
      throw new HubError(
        'INVALID_SIGNATURE',
        'The permit expires too soon for the relayer to submit it: sign a new one with a later deadline',
        { deadline: permit.deadline.toString(), blockTimestamp: block.timestamp.toString() },
      );
    }
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
    if (balance >= relayerFee && (permitted || allowance >= relayerFee)) return;
    throw new HubError(
      'RELAYER_FEE_UNPAYABLE',
      'The Registry takes the relayer fee from the identity’s tokens: its balance and its allowance to the Registry must hold it',
      {
        relayerFee: relayerFee.toString(),
        balance: balance.toString(),
        allowance: allowance.toString(),
        token: getAddress(token),
        spender: getAddress(registry),
      },
    );
  }

  /** Records a new settlement and queues it; a failed one is queued again; any other is left as it is. */
  private async createOrRequeue(settlement: NewSettlement): Promise<SettlementRecord> {
    const [created] = await this.repository.insert([settlement]);
    const queued = created ?? (await this.repository.requeueFailed(settlement.id, settlement.payload));
    if (queued) {
      await this.queue?.enqueue([queued]);
      return queued;
    }
    const existing = await this.repository.get(settlement.id);
    if (!existing) throw new Error(`settlement ${settlement.id} vanished`);
    return existing;
  }

  private async consumerClaim(
    row: SettlementOf<'consumer'>,
  ): Promise<{ promise: SignedConsumerPromise; preimage: Hex }> {
    const exchange = await this.repository.exchange(row.payload.hashlock);
    if (!exchange || exchange.consumer !== row.subject) {
      throw new PermanentFault(`no exchange ${row.payload.hashlock} of consumer ${getAddress(row.subject)}`);
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
      );
    }
    const preimage = await this.preimageOf(exchange);
    if (!preimage) throw new Error(`R of ${exchange.hashlock} is not known yet`);
    return { promise, preimage };
  }

  private async providerClaim(row: SettlementOf<'provider'>) {
    const { payload } = row;
    const exchange = await this.repository.exchange(payload.hashlock);
    if (!exchange || exchange.provider !== row.subject || exchange.hubTotal !== row.amount) {
      throw new PermanentFault(
        `no exchange ${payload.hashlock} of provider ${getAddress(row.subject)} for ${row.amount}`,
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

  private hubPromise(exchange: ExchangeRecord) {
    return {
      ...this.scope,
      provider: getAddress(exchange.provider),
      total: exchange.hubTotal,
      hashlock: exchange.hashlock,
    };
  }

  private signedHubPromise(exchange: ExchangeRecord): SignedHubPromise {
    const promise = this.hubPromise(exchange);
    return { ...promise, signature: this.signer.signDigest(hubPromiseDigestBytes(promise)) };
  }

  /**
   * R of an exchange: recorded with it, or for an exchange an earlier hub version recorded without R,
   * opened from the box the provider sent (and then recorded).
   */
  private async preimageOf(exchange: ExchangeRecord): Promise<Hex | undefined> {
    if (exchange.preimage) return exchange.preimage;
    const opened = this.openBox(exchange.encryptedPreimage);
    if (!opened || keccak256(opened) !== exchange.hashlock) return undefined;
    await this.repository.recordPreimage(exchange.hashlock, opened.toLowerCase() as Hex);
    return opened;
  }

  private async providerSettled(provider: Hex): Promise<bigint> {
    const { registry } = await this.chain.hubInfo();
    return (await getProviderChannel(this.chain.client, { hub: this.scope.hub, provider, registry })).settled;
  }

  private async providersSettled(providers: Hex[]): Promise<bigint[]> {
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

  private registryNonce(registry: Address, identity: Hex): Promise<bigint> {
    return readContract(this.chain.client, {
      address: registry,
      abi: registryAbi,
      functionName: 'nonces',
      args: [identity],
    });
  }

  /** Gas per promise of the hub's recent transactions of `kind`, or the snapshot's figure. */
  private async gasPerPromise(kind: SettlementKind): Promise<bigint> {
    const cached = this.gasCache.get(kind);
    if (cached && Date.now() - cached.at < GAS_CACHE_MS) return cached.gas;
    const gas = (await this.outbox.gasPerClaim(kind, 20)) ?? DEFAULT_GAS_PER_PROMISE[kind];
    this.gasCache.set(kind, { at: Date.now(), gas });
    return gas;
  }
}

function unknownProvider(provider: Hex): HubError {
  const address = getAddress(provider);
  return new HubError('UNKNOWN_PROVIDER', `The hub has no promise for ${address}`, { provider: address });
}

function stringify(args: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(Object.entries(args).map(([key, value]) => [key, String(value).toLowerCase()]));
}

const min = (a: bigint, b: bigint) => (a < b ? a : b);

/** A permit must leave the relayer this long (block time) to submit it. */
const PERMIT_MARGIN_SECONDS = 60n;

const PERMIT_TYPES = {
  Permit: [
    { name: 'owner', type: 'address' },
    { name: 'spender', type: 'address' },
    { name: 'value', type: 'uint256' },
    { name: 'nonce', type: 'uint256' },
    { name: 'deadline', type: 'uint256' },
  ],
} as const;
