/**
 * Group commit: requests that arrive while `concurrency` batches are already in flight wait, and the
 * next free slot takes all of them (up to `maxBatch`) into one transaction. Under light load a request
 * goes out alone at once; under heavy load one fsync covers many requests, so durability does not
 * cap throughput.
 */
export class GroupCommit<Item, Result> {
  private readonly queue: { item: Item; resolve: (result: Result) => void; reject: (error: unknown) => void }[] = [];
  private inFlight = 0;

  constructor(
    private readonly runBatch: (items: Item[]) => Promise<Result[]>,
    private readonly options: { maxBatch: number; concurrency: number },
  ) {}

  /** Queues `item` and resolves with its own result once its batch has committed. */
  submit(item: Item): Promise<Result> {
    return new Promise<Result>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.pump();
    });
  }

  /** Requests waiting for a batch slot. */
  get waiting(): number {
    return this.queue.length;
  }

  private pump(): void {
    while (this.inFlight < this.options.concurrency && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.options.maxBatch);
      this.inFlight++;
      this.runBatch(batch.map((entry) => entry.item))
        .then(
          (results) => {
            batch.forEach((entry, i) => {
              entry.resolve(results[i]!);
            });
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
