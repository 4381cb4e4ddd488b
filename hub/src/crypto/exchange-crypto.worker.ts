import { parentPort, workerData } from 'node:worker_threads';
import type { Hex } from '../db/bytes';
import { ExchangeCryptoWork } from './exchange-crypto';

// A thread of ExchangeCryptoPool: runs each job it is sent and answers it with the same id.
const work = new ExchangeCryptoWork((workerData as { operatorKey: Hex }).operatorKey);

// Loaded: the pool may stop this thread from now on (see ExchangeCryptoPool.close).
parentPort?.postMessage({ ready: true });

parentPort?.on('message', (job: { id: number; kind: 'check' | 'sign'; items: never[] }) => {
  try {
    const results = job.kind === 'check' ? work.check(job.items) : work.sign(job.items);
    parentPort?.postMessage({ id: job.id, results });
  } catch (error) {
    parentPort?.postMessage({ id: job.id, error: error instanceof Error ? error.message : String(error) });
  }
});
