import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { HubPromise } from '@chit/sdk';
import { Logger } from '@nestjs/common';
import type { Hex } from '../db/bytes';
import { type CryptoCheckItem, type CryptoVerdict, ExchangeCryptoWork } from './exchange-crypto';

/**
 * The exchange's crypto (signature recovery, boxes, hub signatures), inline or on worker threads. The
 * answers are the same either way; threads take the work off the thread that serves HTTP and drives
 * Postgres, which on a busy hub is the one that bounds exchanges per second.
 */
export interface ExchangeCrypto {
  /** Recovers each promise's signer and opens each box (see {@link CryptoVerdict}). */
  check(items: CryptoCheckItem[]): Promise<CryptoVerdict[]>;
  /** The operator's signature of each hub promise. */
  sign(promises: HubPromise[]): Promise<Hex[]>;
  /** Stops the threads; jobs still running are refused. */
  close(): Promise<void>;
}

/** `threads` worker threads (0: inline, in the calling thread). */
export function exchangeCrypto(operatorKey: Hex, threads: number): ExchangeCrypto {
  if (threads === 0) {
    const work = new ExchangeCryptoWork(operatorKey);
    return {
      check: async (items) => work.check(items),
      sign: async (promises) => work.sign(promises),
      close: async () => {},
    };
  }
  return new ExchangeCryptoPool(operatorKey, threads);
}

type Kind = 'check' | 'sign';
interface Waiting {
  items: unknown[];
  resolve: (results: unknown[]) => void;
  reject: (error: Error) => void;
}
interface Thread {
  worker: Worker;
  /** Resolves once the thread has loaded its modules, or stopped. */
  loaded: Promise<void>;
  /** Jobs sent and not answered, by id: the callers they answer, in order. */
  jobs: Map<number, Waiting[]>;
  /** Items sent and not answered. */
  load: number;
}

/**
 * A turn's jobs of at most this many items run in the calling thread when the threads have had nothing
 * to do for {@link IDLE_MS}: on a hub that is nearly idle, waking a sleeping thread and hearing back
 * from it takes longer than the work (about 0.3 ms against 0.1 for one exchange's check).
 */
const INLINE_ITEMS = 2;
const IDLE_MS = 5;
/** How long {@link ExchangeCryptoPool.close} waits for a thread still loading before it terminates it. */
const LOAD_WAIT_MS = 30_000;

/**
 * Worker threads that run {@link ExchangeCryptoWork}. The jobs asked for in one turn of the event loop
 * (the exchanges of requests that arrived together) go to a thread as one message, to the least loaded
 * thread; on a nearly idle hub a small one runs inline instead ({@link INLINE_ITEMS}). A thread that
 * dies fails its jobs (their requests answer an internal error, nothing is credited: the crypto runs
 * before the books) and is replaced.
 */
export class ExchangeCryptoPool implements ExchangeCrypto {
  private readonly logger = new Logger('ExchangeCrypto');
  private readonly threads: Thread[] = [];
  private readonly queued: Record<Kind, Waiting[]> = { check: [], sign: [] };
  private scheduled = false;
  private nextId = 1;
  private closed = false;
  /** When a thread last was sent or answered a job. */
  private busyAt = Number.NEGATIVE_INFINITY;
  private inline: ExchangeCryptoWork | undefined;
  private inlined = 0;

  constructor(
    private readonly operatorKey: Hex,
    size: number,
    /** The clock that tells how long the threads have had nothing to do (tests give their own). */
    private readonly now: () => number = () => performance.now(),
  ) {
    for (let i = 0; i < size; i++) this.threads.push(this.spawn());
  }

  check(items: CryptoCheckItem[]): Promise<CryptoVerdict[]> {
    return this.submit('check', items) as Promise<CryptoVerdict[]>;
  }

  sign(promises: HubPromise[]): Promise<Hex[]> {
    return this.submit('sign', promises) as Promise<Hex[]>;
  }

  async close(): Promise<void> {
    this.closed = true;
    const threads = this.threads.splice(0);
    // Node 20 aborts the whole process (a V8 fatal error) when a thread is terminated while it loads an
    // ES module through require, as the hub's threads load the SDK: a hub stopped just after it started
    // would crash. So a thread is terminated once it has loaded, or after LOAD_WAIT_MS.
    await Promise.all(
      threads.map(async (thread) => {
        let waited: NodeJS.Timeout | undefined;
        await Promise.race([
          thread.loaded,
          new Promise((resolve) => {
            waited = setTimeout(resolve, LOAD_WAIT_MS);
          }),
        ]);
        clearTimeout(waited);
        await thread.worker.terminate();
      }),
    );
    for (const thread of threads) this.fail(thread, new Error('the exchange crypto threads were stopped'));
    for (const kind of ['check', 'sign'] as const) {
      for (const waiting of this.queued[kind].splice(0))
        waiting.reject(new Error('the exchange crypto threads were stopped'));
    }
  }

  private submit(kind: Kind, items: unknown[]): Promise<unknown[]> {
    if (items.length === 0) return Promise.resolve([]);
    if (this.closed) return Promise.reject(new Error('the exchange crypto threads were stopped'));
    return new Promise((resolve, reject) => {
      this.queued[kind].push({ items, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    for (const kind of ['check', 'sign'] as const) {
      const waiting = this.queued[kind].splice(0);
      if (waiting.length === 0) continue;
      const thread = this.threads.reduce((least, candidate) => (candidate.load < least.load ? candidate : least));
      const items = waiting.length === 1 ? waiting[0]!.items : waiting.flatMap((entry) => entry.items);
      if (items.length <= INLINE_ITEMS && thread.load === 0 && this.now() - this.busyAt >= IDLE_MS) {
        this.runInline(kind, items, waiting);
        continue;
      }
      this.busyAt = this.now();
      const id = this.nextId++;
      thread.jobs.set(id, waiting);
      thread.load += items.length;
      thread.worker.postMessage({ id, kind, items });
    }
  }

  private runInline(kind: Kind, items: unknown[], waiting: Waiting[]): void {
    this.inline ??= new ExchangeCryptoWork(this.operatorKey);
    let results: unknown[];
    try {
      results =
        kind === 'check' ? this.inline.check(items as CryptoCheckItem[]) : this.inline.sign(items as HubPromise[]);
    } catch (error) {
      for (const entry of waiting) entry.reject(error as Error);
      return;
    }
    this.inlined++;
    let at = 0;
    for (const entry of waiting) {
      entry.resolve(results.slice(at, at + entry.items.length));
      at += entry.items.length;
    }
  }

  private spawn(): Thread {
    // From source (the tests run TypeScript through ts-node) the thread needs ts-node too.
    const file = path.join(__dirname, `exchange-crypto.worker${path.extname(__filename)}`);
    const worker = new Worker(file, {
      workerData: { operatorKey: this.operatorKey },
      ...(file.endsWith('.ts') && { execArgv: ['--require', 'ts-node/register/transpile-only'] }),
    });
    worker.unref();
    let loaded!: () => void;
    const thread: Thread = {
      worker,
      loaded: new Promise<void>((resolve) => {
        loaded = resolve;
      }),
      jobs: new Map(),
      load: 0,
    };
    worker.on('message', (answer: { ready?: true; id: number; results?: unknown[]; error?: string }) => {
      if (answer.ready) return loaded();
      const waiting = thread.jobs.get(answer.id);
      if (!waiting) return;
      thread.jobs.delete(answer.id);
      this.busyAt = this.now();
      const size = waiting.reduce((sum, entry) => sum + entry.items.length, 0);
      thread.load -= size;
      if (answer.error !== undefined || !answer.results) {
        const error = new Error(`exchange crypto failed: ${answer.error}`);
        for (const entry of waiting) entry.reject(error);
        return;
      }
      let at = 0;
      for (const entry of waiting) {
        entry.resolve(answer.results.slice(at, at + entry.items.length));
        at += entry.items.length;
      }
    });
    const replace = (why: string) => {
      this.fail(thread, new Error(`the exchange crypto thread stopped: ${why}`));
      const index = this.threads.indexOf(thread);
      if (index < 0 || this.closed) return;
      this.logger.error(`an exchange crypto thread stopped (${why}): starting another`);
      this.threads[index] = this.spawn();
    };
    worker.on('error', (error) => {
      loaded();
      replace(error.message);
    });
    worker.on('exit', (code) => {
      loaded();
      replace(`exit code ${code}`);
    });
    return thread;
  }

  /** Rejects every job sent to `thread` and not answered. */
  private fail(thread: Thread, error: Error): void {
    for (const waiting of thread.jobs.values()) for (const entry of waiting) entry.reject(error);
    thread.jobs.clear();
    thread.load = 0;
  }

  /** For tests: the jobs that ran in the calling thread. */
  get inlineJobs(): number {
    return this.inlined;
  }

  /** For tests: the threads' ids. */
  get threadIds(): number[] {
    return this.threads.map((thread) => thread.worker.threadId);
  }
}
