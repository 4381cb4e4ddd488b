import { ShuttingDown } from '../settlement.errors';

/** One item's outcome in a batch: its result, or the error its job gets. */
export type BatchOutcome<Result> = { ok: true; value: Result } | { ok: false; error: unknown };

interface Waiting<Item, Result> {
  item: Item;
  promise: Promise<Result>;
  resolve: (result: Result) => void;
  reject: (error: unknown) => void;
}

/**
 * Batches by size and time window: the first item waits up to `windowMs` for others, and a batch goes
 * out at once when it reaches `maxBatch` or an urgent item arrives. Items are keyed by `id`: an item
 * submitted again while it is waiting or in flight shares the first one's outcome, so a job delivered
 * twice (a Redis restart, a stalled job) never puts its claim in two transactions from this process.
 */
export class Batcher<Item extends { id: string }, Result> {
  private waiting: Waiting<Item, Result>[] = [];
  private readonly known = new Map<string, Promise<Result>>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly run: (items: Item[]) => Promise<Map<string, BatchOutcome<Result>>>,
    private readonly options: { maxBatch: number; windowMs: number },
  ) {}

  /** Adds `item` to the next batch and resolves with its own outcome once its batch has one. */
  submit(item: Item, urgent = false): Promise<Result> {
    if (this.closed) return Promise.reject(new ShuttingDown('closing'));
    const known = this.known.get(item.id);
    if (known) {
      if (urgent) this.flush();
      return known;
    }
    let resolve!: (result: Result) => void;
    let reject!: (error: unknown) => void;
    const promise = new Promise<Result>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.known.set(item.id, promise);
    const forget = () => this.known.delete(item.id);
    promise.then(forget, forget);
    this.waiting.push({ item, promise, resolve, reject });
    if (urgent || this.waiting.length >= this.options.maxBatch || this.options.windowMs === 0) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.options.windowMs);
    return promise;
  }

  /** Items waiting for a batch. */
  get size(): number {
    return this.waiting.length;
  }

  /** Sends what is waiting now. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    while (this.waiting.length > 0) {
      const batch = this.waiting.splice(0, this.options.maxBatch);
      const running = this.runBatch(batch);
      this.inFlight.add(running);
      void running.finally(() => this.inFlight.delete(running));
    }
  }

  /** Refuses new items and fails the waiting ones with {@link ShuttingDown}; batches in flight go on. */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const entry of this.waiting.splice(0)) entry.reject(new ShuttingDown('closing'));
  }

  private async runBatch(batch: Waiting<Item, Result>[]): Promise<void> {
    try {
      const outcomes = await this.run(batch.map((entry) => entry.item));
      for (const entry of batch) {
        const outcome = outcomes.get(entry.item.id);
        if (!outcome) entry.reject(new Error(`no outcome for ${entry.item.id}`));
        else if (outcome.ok) entry.resolve(outcome.value);
        else entry.reject(outcome.error);
      }
    } catch (error) {
      for (const entry of batch) entry.reject(error);
    }
  }
}
