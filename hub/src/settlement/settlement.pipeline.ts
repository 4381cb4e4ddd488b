import type { HubScope } from '@chit/sdk';
import { Logger } from '@nestjs/common';
import type Redis from 'ioredis';
import type { Pool } from 'pg';
import { defineChain, getAddress } from 'viem';
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
import { SettlementWorkers } from '../jobs/settlement.workers';
import { Claims } from './claims';
import { ExecutorRepository } from './executor/executor.repository';
import { ExecutorService } from './executor/executor.service';
import { RelaySender } from './executor/relay.sender';
import { InstantExitRepository } from './instant-exit/instant-exit.repository';
import { InstantExitService } from './instant-exit/instant-exit.service';
import { RelayRequestService } from './requests/relay-request.service';
import { RequestsRepository } from './requests/requests.repository';
import { SettlementRequestService } from './requests/settlement-request.service';
import { ScannerRepository } from './scanner/scanner.repository';
import { ScannerService } from './scanner/scanner.service';
import { parseTokenRate } from './settlement.policy';
import { SettlementRepository } from './settlement.repository';
import type { SettlementObserver } from './settlement.types';

/**
 * The settlement pipeline of one hub process, its composition root: the requests the API takes, the
 * scanner, the executor and its outbox, instant exits, the queues they hand settlements to and the
 * workers that run them, and the chain follower's events they listen to.
 */
export class SettlementPipeline {
  private readonly logger = new Logger('SettlementPipeline');
  private listening: { [K in keyof ChainEventMap]?: (...args: ChainEventMap[K]) => void } = {};

  private constructor(
    readonly requests: SettlementRequestService,
    readonly relays: RelayRequestService,
    readonly scanner: ScannerService,
    readonly executor: ExecutorService,
    readonly instantExits: InstantExitService,
    readonly queues: SettlementQueues,
    readonly workers: SettlementWorkers,
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
    const { config, scope, chain, pool } = parts;
    const abort = new AbortController();
    const redisLogger = new Logger('SettlementQueues');
    const redisFailed = (message: string) =>
      parts.redisOutage ? parts.redisOutage.failed(message) : redisLogger.warn(message);

    const settlements = new SettlementRepository(pool);
    const outbox = new OutboxRepository(pool);
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
    const queues = new SettlementQueues(parts.redis, {
      prefix: config.QUEUE_PREFIX,
      attempts: config.SETTLEMENT_ATTEMPTS,
      backoffMs: config.SETTLEMENT_BACKOFF_MS,
      redisFailed,
    });
    const claims = new Claims(scope, chain, settlements, outbox, parts.signer);
    const tokenRate = parseTokenRate(config.RELAYER_TOKENS_PER_WEI);
    const requestOptions = {
      relayerFeeMarginBps: config.RELAYER_FEE_MARGIN_BPS,
      tokenRate,
      quoteValiditySeconds: config.QUOTE_VALIDITY_SECONDS,
    };
    const requestsRepository = new RequestsRepository(pool);
    // The relayer is the account that sends the settlements: the one a provider's SettlementAuthorization names.
    const relayer = getAddress(sender.address);
    const requests = new SettlementRequestService(
      chain,
      claims,
      settlements,
      requestsRepository,
      queues,
      relayer,
      requestOptions,
    );
    const relays = new RelayRequestService(
      scope,
      chain,
      claims,
      settlements,
      requestsRepository,
      queues,
      relayer,
      requestOptions,
    );
    const scanner = new ScannerService(chain, claims, new ScannerRepository(pool, parts.onConfirmed), queues, {
      scanLimit: config.SETTLEMENT_BATCH_SIZE * 10,
      providerThreshold: config.PROVIDER_SETTLEMENT_THRESHOLD,
      maxFeeShareBps: config.SETTLEMENT_MAX_FEE_SHARE_BPS,
      tokenRate,
      confirmations: config.CONFIRMATIONS,
    });
    const executor = new ExecutorService(
      scope,
      chain,
      claims,
      settlements,
      new ExecutorRepository(pool, parts.onConfirmed),
      outbox,
      sender,
      new RelaySender(scope, chain, sender),
      queues,
      {
        batchSize: config.SETTLEMENT_BATCH_SIZE,
        batchWindowMs: config.SETTLEMENT_BATCH_WINDOW_MS,
        leaseMs: Math.max(60_000, config.SETTLEMENT_BATCH_WINDOW_MS * 2),
      },
    );
    const instantExits = new InstantExitService(
      scope,
      chain,
      new InstantExitRepository(pool),
      privateKeyToAccount(config.OPERATOR_KEY as `0x${string}`),
      config.INSTANT_EXIT_VALIDITY_SECONDS,
    );
    const workers = new SettlementWorkers(
      parts.redis,
      queues,
      {
        settlements: {
          process: (id, context) => executor.process(id, context),
          recordFailure: (id, error, final) => executor.recordFailure(id, error, final),
        },
        maintenance: {
          collectDueConsumers: () => scanner.collectDueConsumers(),
          collectDueProviders: () => scanner.collectDueProviders(),
          sweepInstantExits: () => instantExits.sweep(),
        },
        openSettlements: (limit) => settlements.open(limit),
        reopenReorged: () => scanner.reopenReorged(),
      },
      {
        prefix: config.QUEUE_PREFIX,
        lockMs: config.QUEUE_LOCK_MS,
        batchSize: config.SETTLEMENT_BATCH_SIZE,
        scanIntervalMs: config.SETTLEMENT_SCAN_INTERVAL_MS,
        reconcileIntervalMs: config.SETTLEMENT_RECONCILE_INTERVAL_MS,
        providerPolicy: config.PROVIDER_SETTLEMENT_THRESHOLD > 0n,
        redisFailed,
      },
    );
    return new SettlementPipeline(
      requests,
      relays,
      scanner,
      executor,
      instantExits,
      queues,
      workers,
      sender,
      parts.events,
      abort,
    );
  }

  /** Starts the workers and the schedules, re-enqueues the open settlements, and listens to the follower. */
  async start(): Promise<void> {
    const run = (what: string, task: () => Promise<void>) => {
      task().catch((error: unknown) => this.logger.warn(`${what}: ${messageOf(error)}`));
    };
    const { scanner, executor, instantExits } = this;
    this.listening = {
      // A consumer asked to exit: its promises must be settled before the exit can be finalized.
      exitRequested: ({ consumer }) =>
        run('exit requested', async () => {
          await scanner.collectDueConsumers(consumer, true);
          executor.flushConsumers();
        }),
      consumerSettled: ({ consumer, total, txHash }) =>
        run('consumer settled', () => scanner.onSettled('consumer', consumer, total, txHash)),
      providerSettled: ({ provider, total, txHash }) =>
        run('provider settled', () => scanner.onSettled('provider', provider, total, txHash)),
      deposited: ({ consumer }) => run('deposited', () => scanner.onDeposited(consumer)),
      exited: ({ consumer, block }) => run('exited', () => instantExits.onExited(consumer, block)),
      rewound: ({ block }) => run('rewound', () => scanner.onRewound(block)),
    };
    for (const [name, listener] of Object.entries(this.listening)) {
      this.events.on(name as keyof ChainEventMap, listener as never);
    }
    await this.workers.start();
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
    this.executor.close();
    await this.workers.close();
    await this.queues.close();
  }
}
