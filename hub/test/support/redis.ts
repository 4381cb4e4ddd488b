import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';

// Queue prefixes of the hub tests. The tests share the local Redis with other people's work, so each
// hub gets a QUEUE_PREFIX of its own, and the keys under it are deleted (SCAN + UNLINK, never a flush)
// once the test file that made it is done: the root hooks (support/hooks.ts) run `dropQueuePrefixes`
// after each file's own `after` hooks, when its hubs are closed.

/** Every key BullMQ writes under `prefix`: `<prefix>:<queue>:…`. */
const patternOf = (prefix: string) => `${prefix.replace(/[*?[\]\\]/g, '\\$&')}:*`;

const created = new Map<string, string>();

/**
 * A fresh QUEUE_PREFIX (`chit-test-<label>-<uuid>`) on the Redis at `redisUrl`, whose keys are deleted
 * after the test file. Call it from a hook or a test, not from a `describe` body (files are loaded
 * before any of them runs).
 */
export function queuePrefix(redisUrl: string, label = 'hub'): string {
  const prefix = `chit-test-${label}-${randomUUID()}`;
  created.set(prefix, redisUrl);
  return prefix;
}

/** Deletes every key under `prefix` on the Redis at `redisUrl`; returns how many. A Redis gone counts as 0. */
export async function deleteQueueKeys(redisUrl: string, prefix: string): Promise<number> {
  const client = new Redis(redisUrl, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 1_000,
  });
  client.on('error', () => {});
  try {
    await client.connect();
  } catch {
    client.disconnect();
    return 0;
  }
  let deleted = 0;
  try {
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', patternOf(prefix), 'COUNT', 1_000);
      cursor = next;
      if (keys.length > 0) deleted += await client.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    client.disconnect();
  }
  return deleted;
}

/** Deletes the keys of every prefix made so far by {@link queuePrefix}, and forgets them. */
export async function dropQueuePrefixes(): Promise<number> {
  let deleted = 0;
  for (const [prefix, url] of [...created]) {
    deleted += await deleteQueueKeys(url, prefix).catch(() => 0);
    created.delete(prefix);
  }
  return deleted;
}
