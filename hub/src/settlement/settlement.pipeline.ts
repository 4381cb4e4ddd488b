import type { HubScope } from '@chit/sdk';
import { Logger } from '@nestjs/common';
import type Redis from 'ioredis';
import type { Pool } from 'pg';
import { defineChain } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import type { ChainService } from '../chain/chain.service';
import type { ChainEventMap, ChainEvents } from '../chain/chain-events';
import { NonceManager } from '../chain/outbox/nonce-manager';
import { OutboxRepository } from '../chain/outbox/outbox.repository';
import { TransactionSender } from '../chain/outbox/transaction-sender';
import type { HubConfig } from '../config/config';
import type { OperatorSigner } from '../crypto/operator-signer';
import { messageOf } from '../errors/message-of';
import type { OutageLog } from '../health/outage-log';
import { SettlementQueues } from '../jobs/settlement.queues';
import { SettlementRepository } from '../repositories/settlement.repository';
import { InstantExitRepository } from './instant-exit/instant-exit.repository';
import { InstantExitService } from './instant-exit/instant-exit.service';
import { parseTokenRate } from './settlement.policy';
import { SettlementService } from './settlement.service';
import type { SettlementObserver } from './settlement.types';

/** The settlement pipeline of one hub process: the service, its queues and workers, its chain listeners. */
export class SettlementPipeline {
  private readonly logger = new Logger('SettlementPipeline');
  private listening: { [K in keyof ChainEventMap]?: (...args: ChainEventMap[K]) => void } = {};

  private constructor(
    readonly service: SettlementService,
    readonly instantExits: InstantExitService,
    readonly queues: SettlementQueues,
    readonly sender: TransactionSender,
    private readonly events: ChainEvents,
    private readonly abort: AbortController,
  ) {}

  /** Builds the pipeline (queues included, workers not started: see {@link start}). */
  static create(parts: {
    config: HubConfig;
    scope: HubScope;
    pool: Pool;
    redis: Redis;
    chain: ChainService;
    events: ChainEvents;
    signer: OperatorSigner;
    /** Where the queues' Redis errors go (one log of Redis outages per process). */
    redisOutage?: OutageLog;
    /** Hears each settlement this process confirms (metrics). */
    onConfirmed?: SettlementObserver;
  }): SettlementPipeline {
    const { config, scope, chain } = parts;
    const repository = new SettlementRepository(parts.pool, parts.onConfirmed);
    const outbox = new OutboxRepository(parts.pool);
    const abort = new AbortController();
    const relayerKey = (config.RELAYER_KEY ?? config.OPERATOR_KEY) as `0x${string}`;
    const nonces = new NonceManager(
      privateKeyToAccount(relayerKey).address.toLowerCase() as `0x${string}`,
      chain.client,
      outbox,
    );
    const sender = new TransactionSender(
      relayerKey,
      defineChain({
        id: scope.chainId,
        name: `chain ${scope.chainId}`,
        nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
        rpcUrls: { default: { http: [chain.rpcUrl] } },
      }),
      chain.rpcUrl,
      chain.client,
      nonces,
      outbox,
      {
        confirmations: config.CONFIRMATIONS,
        resubmitAfterMs: config.TX_RESUBMIT_AFTER_MS,
        bumpPercent: config.TX_FEE_BUMP_PERCENT,
        maxFeePerGas: config.TX_MAX_FEE_PER_GAS,
        pollMs: config.TX_POLL_INTERVAL_MS,
      },
      abort.signal,
    );
    const service = new SettlementService(scope, chain, repository, outbox, sender, parts.signer, {
      batchSize: config.SETTLEMENT_BATCH_SIZE,
      batchWindowMs: config.SETTLEMENT_BATCH_WINDOW_MS,
      scanLimit: config.SETTLEMENT_BATCH_SIZE * 10,
      providerThreshold: config.PROVIDER_SETTLEMENT_THRESHOLD,
      maxFeeShareBps: config.SETTLEMENT_MAX_FEE_SHARE_BPS,
      relayerFeeMarginBps: config.RELAYER_FEE_MARGIN_BPS,
      tokenRate: parseTokenRate(config.RELAYER_TOKENS_PER_WEI),
      quoteValiditySeconds: config.QUOTE_VALIDITY_SECONDS,
      leaseMs: Math.max(60_000, config.SETTLEMENT_BATCH_WINDOW_MS * 2),
      confirmations: config.CONFIRMATIONS,
    });
    const queues = new SettlementQueues(parts.redis, repository, {
      prefix: config.QUEUE_PREFIX,
      attempts: config.SETTLEMENT_ATTEMPTS,
      backoffMs: config.SETTLEMENT_BACKOFF_MS,
      lockMs: config.QUEUE_LOCK_MS,
      batchSize: config.SETTLEMENT_BATCH_SIZE,
      scanIntervalMs: config.SETTLEMENT_SCAN_INTERVAL_MS,
      reconcileIntervalMs: config.SETTLEMENT_RECONCILE_INTERVAL_MS,
      providerPolicy: config.PROVIDER_SETTLEMENT_THRESHOLD > 0n,
      redisOutage: parts.redisOutage,
    });
    service.attach(queues);
    const instantExits = new InstantExitService(
      scope,
      chain,
      new InstantExitRepository(parts.pool),
      privateKeyToAccount(config.OPERATOR_KEY as `0x${string}`),
      config.INSTANT_EXIT_VALIDITY_SECONDS,
    );
    return new SettlementPipeline(service, instantExits, queues, sender, parts.events, abort);
  }

  /** Starts the workers and the schedules, re-enqueues the open settlements, and listens to the follower. */
  async start(): Promise<void> {
    const run = (what: string, task: () => Promise<void>) => {
      task().catch((error: unknown) => this.logger.warn(`${what}: ${messageOf(error)}`));
    };
    const service = this.service;
    this.listening = {
      exitRequested: ({ consumer }) => run('exit requested', () => service.onExitRequested(consumer)),
      consumerSettled: ({ consumer, total, txHash }) =>
        run('consumer settled', () => service.onSettled('consumer', consumer, total, txHash)),
      providerSettled: ({ provider, total, txHash }) =>
        run('provider settled', () => service.onSettled('provider', provider, total, txHash)),
      deposited: ({ consumer }) => run('deposited', () => service.onDeposited(consumer)),
      exited: ({ consumer, block }) => run('exited', () => this.instantExits.onExited(consumer, block)),
      rewound: ({ block }) => run('rewound', () => service.onRewound(block)),
    };
    for (const [name, listener] of Object.entries(this.listening)) {
      this.events.on(name as keyof ChainEventMap, listener as never);
    }
    await this.queues.start(this.service, this.instantExits);
  }

  /**
   * Stops: no new batches, waiting claims and transactions being followed go back to their queue
   * (a restarted hub or another replica picks them up), then the workers and queues close.
   */
  async close(): Promise<void> {
    for (const [name, listener] of Object.entries(this.listening)) {
      this.events.off(name as keyof ChainEventMap, listener as never);
    }
    this.listening = {};
    this.abort.abort();
    this.service.close();
    await this.queues.close();
  }
}
