import type { HubInfo } from '@chit/sdk';
import { Logger } from '@nestjs/common';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Address } from 'viem';
import type { ChainService } from '../chain/chain.service';
import { briefRpcError, rpcUnreachable } from '../chain/rpc-errors';
import type { ExchangeService } from '../exchange/exchange.service';
import type { SettlementKind, SettlementStatus } from '../settlement/settlement.types';
import type { MetricsRepository } from './metrics.repository';

const STATUSES: readonly SettlementStatus[] = ['queued', 'submitted', 'confirmed', 'failed', 'retrying'];
/**
 * The BullMQ job states `chit_queue_jobs` reports: `paused` are waiting jobs of a paused queue (the
 * hub pauses none); completed jobs are removed at once.
 */
export const QUEUE_STATES = ['waiting', 'paused', 'active', 'delayed', 'prioritized', 'failed'] as const;
export type QueueState = (typeof QUEUE_STATES)[number];
/** How long a scrape waits for a read of the chain or Redis before it reports the last value read. */
const SCRAPE_WAIT_MS = 2_000;
/** How long a read of the hub's state or the relayer's balance serves scrapes before it is read again. */
const CHAIN_READ_MAX_AGE_MS = 5_000;
/**
 * prom-client's default gauges named `_total`, which Prometheus keeps for counters (`promtool check
 * metrics`); the same gauges by `type` stay, and their sum is the total.
 */
const MISNAMED_DEFAULTS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

/**
 * A value a scrape reads from another service: one read at a time, at most one every `maxAgeMs`
 * however often Prometheus scrapes, and a scrape waits for it at most `waitMs`. While reads fail or
 * hang, `get` answers the last value read (before the first: `value`, if given).
 */
class BoundedRead<T> {
  private readAt = Number.NEGATIVE_INFINITY;
  private reading: Promise<void> | undefined;

  constructor(
    private readonly read: () => Promise<T>,
    private readonly failed: (error: unknown) => void,
    private readonly timing: { maxAgeMs: number; waitMs: number },
    private value?: T,
  ) {}

  async get(): Promise<T | undefined> {
    if (!this.reading && Date.now() - this.readAt >= this.timing.maxAgeMs) {
      this.reading = this.read()
        .then((value) => {
          this.value = value;
        }, this.failed)
        .finally(() => {
          this.readAt = Date.now();
          this.reading = undefined;
        });
    }
    if (this.reading) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.timing.waitMs);
      });
      await Promise.race([this.reading, late]).finally(() => clearTimeout(timer));
    }
    return this.value;
  }
}

/**
 * The hub's Prometheus metrics, in a registry of its own (two hubs in one process do not collide).
 * Counters and histograms are this process's; the gauges read from Postgres, Redis and the chain are
 * computed at scrape time and are the same on every replica. A scrape waits at most 2 s for the
 * chain and Redis: a gauge they did not answer keeps the last value read. Token amounts are in the
 * token's smallest unit (a float: exact up to 2^53).
 */
export class MetricsService {
  readonly registry = new Registry();
  private readonly logger = new Logger('Metrics');
  private readonly exchanges = new Counter({
    name: 'chit_exchanges_total',
    help: 'Exchanges answered with a hub promise, by outcome (ok: credited now; repeated: a repeat of an earlier one)',
    labelNames: ['outcome'],
    registers: [this.registry],
  });
  private readonly exchangeSeconds = new Histogram({
    name: 'chit_exchange_seconds',
    help: 'Time to answer an exchange, refused ones included',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  private readonly errors = new Counter({
    name: 'chit_errors_total',
    help: 'Error answers, by code',
    labelNames: ['code'],
    registers: [this.registry],
  });
  private readonly settlementSeconds = new Histogram({
    name: 'chit_settlement_seconds',
    help: 'Time from queued to confirmed of the settlements this process confirmed, by kind',
    labelNames: ['kind'],
    buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600],
    registers: [this.registry],
  });

  constructor(parts: {
    repository: MetricsRepository;
    chain: ChainService;
    exchanges: () => ExchangeService;
    /** The chain's head minus the last block the follower applied (ChainFollower.lag). */
    followerLag: () => Promise<bigint>;
    /** The account that sends the hub's transactions (RELAYER_KEY's, else OPERATOR_KEY's), checksummed. */
    relayer: Address;
    /** The jobs of each BullMQ queue of the process by state; undefined while Redis is not connected. */
    jobCounts: (states: readonly QueueState[]) => Promise<ReadonlyMap<string, Record<string, number>> | undefined>;
    /** How long a read of the hub's state or the relayer's balance serves scrapes; 5 s by default. */
    chainReadMaxAgeMs?: number;
  }) {
    const { repository, chain, exchanges, followerLag, relayer, jobCounts } = parts;
    const logger = this.logger;
    collectDefaultMetrics({ register: this.registry });
    for (const name of MISNAMED_DEFAULTS) this.registry.removeSingleMetric(name);
    const chainFailed = (metric: string) => (error: unknown) => {
      if (rpcUnreachable(error)) chain.unreachable(error);
      else logger.warn(`${metric}: ${briefRpcError(error, chain.rpcUrl)}`);
    };
    const cached = { maxAgeMs: parts.chainReadMaxAgeMs ?? CHAIN_READ_MAX_AGE_MS, waitMs: SCRAPE_WAIT_MS };
    // Until a scrape reads it, the state the hub read at start: the stake and free funds are not a false 0.
    const hubInfo = new BoundedRead<HubInfo>(
      () => chain.hubInfo(),
      chainFailed('chit_stake_tokens, chit_free_funds_tokens'),
      cached,
      chain.lastHubInfo,
    );
    const relayerBalance = new BoundedRead(
      () => chain.client.getBalance({ address: relayer }),
      chainFailed('chit_relayer_gas_balance_wei'),
      cached,
    );
    // Read at every scrape (one read at a time): the lag is wanted as it is now.
    const lag = new BoundedRead(followerLag, chainFailed('chit_follower_lag_blocks'), {
      maxAgeMs: 0,
      waitMs: SCRAPE_WAIT_MS,
    });
    const jobs = new BoundedRead(
      () => jobCounts(QUEUE_STATES),
      (error) => logger.warn(`chit_queue_jobs: ${(error as Error).message}`),
      { maxAgeMs: 0, waitMs: SCRAPE_WAIT_MS },
    );
    for (const outcome of ['ok', 'repeated']) this.exchanges.inc({ outcome }, 0);
    const batchesCounted = { memory: 0, locked: 0 };
    new Counter({
      name: 'chit_exchange_batches_total',
      help: 'Group-commit batches committed, by the books they were decided on (memory: checked by the write; locked: rows locked in Postgres)',
      labelNames: ['books'],
      registers: [this.registry],
      collect() {
        const counts = exchanges().batchCounts;
        for (const books of ['memory', 'locked'] as const) {
          this.inc({ books }, counts[books] - batchesCounted[books]);
          batchesCounted[books] = counts[books];
        }
      },
    });
    new Gauge({
      name: 'chit_exchange_queue_depth',
      help: 'Exchanges waiting for a group-commit batch',
      registers: [this.registry],
      collect() {
        this.set(exchanges().queueDepth);
      },
    });
    new Gauge({
      name: 'chit_settlements',
      help: 'Settlements (all replicas) by status',
      labelNames: ['status'],
      registers: [this.registry],
      async collect() {
        try {
          const counts = await repository.settlementsByStatus();
          for (const status of STATUSES) this.set({ status }, counts.get(status) ?? 0);
        } catch (error) {
          logger.warn(`chit_settlements: ${(error as Error).message}`);
        }
      },
    });
    new Gauge({
      name: 'chit_unsettled_liabilities_tokens',
      help: 'What the hub owes providers and they have not settled: sum of promised - settled',
      registers: [this.registry],
      async collect() {
        try {
          this.set(Number(await repository.unsettledLiabilities()));
        } catch (error) {
          logger.warn(`chit_unsettled_liabilities_tokens: ${(error as Error).message}`);
        }
      },
    });
    new Gauge({
      name: 'chit_follower_lag_blocks',
      help: "Blocks between the chain's head and the last block the chain follower applied to the books (CONFIRMATIONS included)",
      registers: [this.registry],
      async collect() {
        const blocks = await lag.get();
        if (blocks !== undefined) this.set(Number(blocks));
      },
    });
    new Gauge({
      name: 'chit_stake_tokens',
      help: "The operator's stake on-chain, which backs the hub's promises",
      registers: [this.registry],
      async collect() {
        const info = await hubInfo.get();
        if (info) this.set(Number(info.stake));
      },
    });
    new Gauge({
      name: 'chit_free_funds_tokens',
      help: "The hub's free funds on-chain, which pay provider claims before the stake does",
      registers: [this.registry],
      async collect() {
        const info = await hubInfo.get();
        if (info) this.set(Number(info.freeFunds));
      },
    });
    new Gauge({
      name: 'chit_relayer_gas_balance_wei',
      help: "The ETH balance of the account that sends the hub's transactions (settlements, relayed registrations)",
      labelNames: ['account'],
      registers: [this.registry],
      async collect() {
        const balance = await relayerBalance.get();
        if (balance !== undefined) this.set({ account: relayer }, Number(balance));
      },
    });
    new Gauge({
      name: 'chit_queue_jobs',
      help: 'Jobs in each BullMQ queue (all replicas), by state',
      labelNames: ['queue', 'state'],
      registers: [this.registry],
      async collect() {
        const counts = await jobs.get();
        for (const [queue, byState] of counts ?? []) {
          for (const state of QUEUE_STATES) this.set({ queue, state }, byState[state] ?? 0);
        }
      },
    });
  }

  /**
   * For {@link ExchangeService}'s observer. `code` comes with a refused item of a batch: its error is
   * answered inside a 200, so the error filter does not count it.
   */
  exchanged(outcome: 'ok' | 'repeated' | 'refused', seconds: number, code?: string): void {
    if (outcome !== 'refused') this.exchanges.inc({ outcome });
    else if (code) this.errors.inc({ code });
    this.exchangeSeconds.observe(seconds);
  }

  /** For the error filter. */
  errored(code: string): void {
    this.errors.inc({ code });
  }

  /** For the settlement repository's observer. */
  settled(kind: SettlementKind, seconds: number): void {
    this.settlementSeconds.observe({ kind }, seconds);
  }

  /** The Prometheus text exposition. */
  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
