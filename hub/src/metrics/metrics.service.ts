import { Logger } from '@nestjs/common';
import type { Pool } from 'pg';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { ChainService } from '../chain/chain.service';
import type { ExchangeService } from '../exchange/exchange.service';
import type { SettlementKind, SettlementStatus } from '../repositories/settlement.repository';

const STATUSES: readonly SettlementStatus[] = ['queued', 'submitted', 'confirmed', 'failed', 'retrying'];

/**
 * The hub's Prometheus metrics, in a registry of its own (two hubs in one process do not collide).
 * Counters and histograms are this process's; the gauges read from Postgres and the chain are
 * computed at scrape time and are the same on every replica. Token amounts are in the token's
 * smallest unit (a float: exact up to 2^53).
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
    pool: Pool;
    chain: ChainService;
    exchanges: () => ExchangeService;
    /** The chain's head minus the last block the follower applied (ChainFollower.lag). */
    followerLag: () => Promise<bigint>;
  }) {
    const { pool, chain, exchanges, followerLag } = parts;
    const logger = this.logger;
    collectDefaultMetrics({ register: this.registry });
    for (const outcome of ['ok', 'repeated']) this.exchanges.inc({ outcome }, 0);
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
          const { rows } = await pool.query('SELECT status, count(*)::int AS n FROM settlements GROUP BY status');
          const counts = new Map(rows.map((row) => [row.status as string, row.n as number]));
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
          const { rows } = await pool.query(
            'SELECT coalesce(sum(greatest(promised - settled, 0)), 0)::text AS owed FROM providers',
          );
          this.set(Number(rows[0].owed));
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
        try {
          this.set(Number(await followerLag()));
        } catch (error) {
          logger.warn(`chit_follower_lag_blocks: ${(error as Error).message}`);
        }
      },
    });
    new Gauge({
      name: 'chit_stake_tokens',
      help: "The operator's stake on-chain, which backs the hub's promises",
      registers: [this.registry],
      async collect() {
        try {
          this.set(Number((await chain.hubInfo()).stake));
        } catch (error) {
          logger.warn(`chit_stake_tokens: ${(error as Error).message}`);
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
