import type { Hex } from '../db/bytes';
import type { ExchangeRepository } from '../repositories/exchange.repository';
import {
  type AgreementState,
  agreementKey,
  type BatchState,
  type BatchWrites,
  type BooksRead,
  booksReadOf,
  type ConsumerState,
  type ExchangeCandidate,
  type ExchangeOutcome,
  type ProviderState,
} from './exchange.rules';

/** The rules run on a batch: each candidate's outcome and what to write. */
export type BatchRules = (state: BatchState) => { outcomes: ExchangeOutcome[]; writes: BatchWrites };

/** How many batches were decided on the books in memory, and how many on rows locked in Postgres. */
export interface BooksCounts {
  memory: number;
  locked: number;
}

/**
 * The exchange's books as this process last committed them, in memory, so that a batch is decided
 * without reading Postgres and written in one statement: one round trip and one fsync.
 *
 * Memory is never trusted with money. The write checks that every row the batch decided on is still as
 * memory held it (a deposit, an exit, a settlement or another replica may have changed it) and that its
 * hashlocks are new; when one is not, it writes nothing and the batch is decided again on rows locked in
 * Postgres, as every batch was before, which also refreshes memory. The locked path also takes a batch
 * memory cannot decide: a consumer, provider or agreement it does not hold (an agreement it does not hold
 * is taken as new, which the write checks), a provider with an unrevealed R, or a candidate the rules
 * refuse, since a refusal may come from rows that changed.
 *
 * Within the process, batches that share a consumer or a provider run one after another, so memory
 * stays exact and only other writers make a batch fall back.
 */
export class ExchangeBooks {
  private readonly consumers: RecentRows<Hex, ConsumerState>;
  private readonly providers: RecentRows<Hex, ProviderState>;
  private readonly agreements: RecentRows<string, AgreementState>;
  /** For each consumer or provider of a batch in flight, when the last batch that claimed it ends. */
  private readonly busy = new Map<string, Promise<void>>();
  readonly counts: BooksCounts = { memory: 0, locked: 0 };

  /**
   * @param rows How many consumers, providers and agreements (each) memory holds, the most recently
   *   written kept; 0 decides every batch on locked rows.
   */
  constructor(
    private readonly repository: ExchangeRepository,
    rows: number,
  ) {
    this.consumers = new RecentRows(rows);
    this.providers = new RecentRows(rows);
    this.agreements = new RecentRows(rows * 2);
  }

  /** Decides `candidates` by `rules` and commits what they wrote; the outcomes, in order. */
  async decide(candidates: ExchangeCandidate[], rules: BatchRules): Promise<ExchangeOutcome[]> {
    const release = await this.claim(candidates);
    try {
      const read = this.fromMemory(candidates);
      if (read) {
        const { outcomes, writes } = rules({ ...booksReadOf(read), exchanges: new Map() });
        if (outcomes.every((outcome) => outcome.ok) && (await this.repository.writeUnlocked(writes, read))) {
          this.remember(writes);
          this.counts.memory++;
          return outcomes;
        }
      }
      let committed: { read: BooksRead; writes: BatchWrites } | undefined;
      const outcomes = await this.repository.inBatch(candidates, (state) => {
        const before = booksReadOf(state);
        const { outcomes, writes } = rules(state);
        committed = { read: before, writes };
        return { writes, result: outcomes };
      });
      this.remember(committed!.read);
      this.remember(committed!.writes);
      this.counts.locked++;
      return outcomes;
    } catch (error) {
      // The write may or may not have committed: read these rows from Postgres next time.
      this.forget(candidates);
      throw error;
    } finally {
      release();
    }
  }

  /** The rows `candidates` read, all from memory, or undefined when memory cannot decide them. */
  private fromMemory(candidates: ExchangeCandidate[]): BooksRead | undefined {
    const read: BooksRead = { consumers: new Map(), providers: new Map(), agreements: new Map() };
    for (const c of candidates) {
      const consumer = this.consumers.get(c.consumer);
      const provider = this.providers.get(c.provider);
      if (!consumer || !provider || provider.unrevealedHashlock) return undefined;
      read.consumers.set(c.consumer, consumer);
      read.providers.set(c.provider, provider);
      const key = agreementKey(c.provider, c.agreementId);
      const agreement = this.agreements.get(key);
      if (agreement) read.agreements.set(key, agreement);
    }
    return read;
  }

  private remember(rows: BooksRead): void {
    for (const [address, row] of rows.consumers) this.consumers.set(address, row);
    for (const [address, row] of rows.providers) this.providers.set(address, row);
    for (const [key, row] of rows.agreements) this.agreements.set(key, row);
  }

  private forget(candidates: ExchangeCandidate[]): void {
    for (const c of candidates) {
      this.consumers.delete(c.consumer);
      this.providers.delete(c.provider);
      this.agreements.delete(agreementKey(c.provider, c.agreementId));
    }
  }

  /**
   * Waits for the batches in flight that share a consumer or a provider with `candidates` (agreements
   * belong to their provider); the answer releases this batch's claim. A batch only ever waits for
   * batches that claimed before it, so no two wait for each other.
   */
  private async claim(candidates: ExchangeCandidate[]): Promise<() => void> {
    const keys = new Set<string>();
    for (const c of candidates) {
      keys.add(c.consumer);
      keys.add(c.provider);
    }
    const earlier = new Set<Promise<void>>();
    let release!: () => void;
    const done = new Promise<void>((resolve) => {
      release = resolve;
    });
    for (const key of keys) {
      const previous = this.busy.get(key);
      if (previous) earlier.add(previous);
      this.busy.set(key, done);
    }
    if (earlier.size > 0) await Promise.all(earlier);
    return () => {
      for (const key of keys) if (this.busy.get(key) === done) this.busy.delete(key);
      release();
    };
  }
}

/** A map of at most `limit` entries that drops the least recently written first (none held when 0). */
class RecentRows<K, V> {
  private readonly rows = new Map<K, V>();

  constructor(private readonly limit: number) {}

  get(key: K): V | undefined {
    return this.rows.get(key);
  }

  set(key: K, value: V): void {
    if (this.limit === 0) return;
    this.rows.delete(key);
    this.rows.set(key, value);
    if (this.rows.size > this.limit) this.rows.delete(this.rows.keys().next().value as K);
  }

  delete(key: K): void {
    this.rows.delete(key);
  }
}
