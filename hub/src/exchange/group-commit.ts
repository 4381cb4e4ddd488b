/**
 * Group commit: requests that arrive while `concurrency` batches are already in flight wait, and the
 * next free slot takes all of them (up to `maxBatch`) into one transaction. Under light load a request
 * goes out alone at once; under heavy load one fsync covers many requests, so durability does not
 * cap throughput. The items of one {@link GroupCommit.submitAll} are never split: they share one
 * transaction, in their order, so a batch request is decided as its items would be one after another.
 */
export class GroupCommit<Item, Result> {
  private readonly queue: { items: Item[]; resolve: (results: Result[]) => void; reject: (error: unknown) => void }[] =
    [];
  private queued = 0;
  private inFlight = 0;

  constructor(
    private readonly runBatch: (items: Item[]) => Promise<Result[]>,
    private readonly options: { maxBatch: number; concurrency: number },
  ) {}

  /** Queues `item` and resolves with its own result once its batch has committed. */
  async submit(item: Item): Promise<Result> {
    return (await this.submitAll([item]))[0]!;
  }

  /**
   * Queues `items` together and resolves with their results, in order, once their batch has committed.
   * They go into one batch even when there are more than `maxBatch` of them.
   */
  submitAll(items: Item[]): Promise<Result[]> {
    if (items.length === 0) return Promise.resolve([]);
    return new Promise<Result[]>((resolve, reject) => {
      this.queue.push({ items, resolve, reject });
      this.queued += items.length;
      this.pump();
    });
  }

  /** Items waiting for a batch slot. */
  get waiting(): number {
    return this.queued;
  }

  private pump(): void {
    while (this.inFlight < this.options.concurrency && this.queue.length > 0) {
      let take = 1;
      let size = this.queue[0]!.items.length;
      while (take < this.queue.length && size + this.queue[take]!.items.length <= this.options.maxBatch) {
        size += this.queue[take]!.items.length;
        take++;
      }
      const batch = this.queue.splice(0, take);
      this.queued -= size;
      this.inFlight++;
      this.runBatch(batch.length === 1 ? batch[0]!.items : batch.flatMap((entry) => entry.items))
        .then(
          (results) => {
            let at = 0;
            for (const entry of batch) {
              entry.resolve(results.slice(at, at + entry.items.length));
              at += entry.items.length;
            }
          },
          (error) => {
            for (const entry of batch) entry.reject(error);
          },
        )
        .finally(() => {
          this.inFlight--;
          this.pump();
        });
    }
  }
}
