import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { PoolClient } from 'pg';
import { createTestClient, http } from 'viem';
import { foundry } from 'viem/chains';
import { startTestStack, type TestStack } from './support/hub';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

// biome-ignore lint/suspicious/noExplicitAny: a JSON answer
type Json = any;

// A hub whose chain follower cannot follow is not ready: /ready says which check failed and why, and
// chit_follower_lag_blocks tells how far behind the books are.
describe('follower health: /ready and chit_follower_lag_blocks', () => {
  const STALL_MS = 3_000;
  let stack: TestStack;
  let url: string;
  let cursorId: string;
  let locker: PoolClient | undefined;

  before(async function () {
    this.timeout(120_000);
    stack = await startTestStack('follower-health', {
      CONFIRMATIONS: '0',
      FOLLOWER_POLL_MS: '100',
      FOLLOWER_STALL_MS: String(STALL_MS),
    });
    url = stack.hub.url;
    cursorId = `31337:${stack.chain.deployment.hub.address.toLowerCase()}`;
  });
  after(async () => {
    await locker?.query('ROLLBACK').catch(() => {});
    locker?.release();
    await stack?.stop();
  });

  const mine = (blocks: number) =>
    createTestClient({ chain: foundry, mode: 'anvil', transport: http(stack.chain.url) }).mine({ blocks });
  const ready = async (): Promise<{ status: number; body: Json }> => {
    const response = await fetch(`${url}/ready`);
    return { status: response.status, body: await response.json() };
  };
  const lag = async () => {
    const text = await (await fetch(`${url}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith('chit_follower_lag_blocks '));
    return line === undefined ? undefined : Number(line.split(' ')[1]);
  };
  /** Holds the follower's cursor row locked (as a stuck transaction would): it can apply nothing. */
  async function lockCursor(): Promise<void> {
    locker = await stack.db.pool.connect();
    await locker.query('BEGIN');
    await locker.query('SELECT block FROM chain_cursor WHERE id = $1 FOR UPDATE', [cursorId]);
  }
  async function unlockCursor(): Promise<void> {
    await locker?.query('ROLLBACK');
    locker?.release();
    locker = undefined;
  }

  it('is ready with the follower keeping up', async () => {
    const answer = await until('/ready 200', async () => {
      const answer = await ready();
      return answer.status === 200 && answer;
    });
    assert.deepEqual(answer.body, {
      status: 'ready',
      checks: { postgres: true, redis: true, rpc: true, follower: true },
    });
  });

  it('reads the lag as head - last applied block, at scrape time', async function () {
    this.timeout(60_000);
    await mine(3);
    await until('the follower to catch up (lag 0)', async () => (await lag()) === 0);
    await lockCursor();
    try {
      await mine(5);
      assert.equal(await lag(), 5);
      await mine(2);
      assert.equal(await lag(), 7);
    } finally {
      await unlockCursor();
    }
    await until('the follower to catch up again (lag 0)', async () => (await lag()) === 0);
  });

  it('answers 503 when no sync reaches the head for FOLLOWER_STALL_MS, and 200 once it does again', async function () {
    this.timeout(60_000);
    await until('/ready 200', async () => (await ready()).status === 200);
    await lockCursor();
    try {
      await mine(1);
      const stuck = await until('/ready 503', async () => {
        const answer = await ready();
        return answer.status === 503 && answer;
      });
      assert.deepEqual(stuck.body.checks, { postgres: true, redis: true, rpc: true, follower: false });
      assert.equal(stuck.body.status, 'unavailable');
      assert.match(
        stuck.body.reasons.follower,
        /^no sync reached the confirmed head for \d+ s: a sync is still running$/,
      );
    } finally {
      await unlockCursor();
    }
    const back = await until('/ready 200 again', async () => {
      const answer = await ready();
      return answer.status === 200 && answer;
    });
    assert.equal(back.body.reasons, undefined);
  });

  it('answers 503 naming a reorg deeper than the follower history', async function () {
    this.timeout(60_000);
    await until('/ready 200', async () => (await ready()).status === 200);
    // No block the follower applied is on the chain any more: what a reorg below its history leaves.
    const client = await stack.db.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT block FROM chain_cursor WHERE id = $1 FOR UPDATE', [cursorId]);
      await client.query('UPDATE chain_checkpoints SET block_hash = $2 WHERE cursor_id = $1', [
        cursorId,
        randomBytes(32),
      ]);
      await client.query('UPDATE chain_cursor SET block_hash = $2 WHERE id = $1', [cursorId, randomBytes(32)]);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    const { rows } = await stack.db.pool.query('SELECT block::text FROM chain_cursor WHERE id = $1', [cursorId]);
    // The fault fails the check at the first sync that meets it, without waiting for FOLLOWER_STALL_MS.
    const answer = await until('/ready 503 naming the reorg', async () => {
      const answer = await ready();
      return answer.status === 503 && /^reorg/.test(answer.body.reasons?.follower) && answer;
    });
    assert.deepEqual(answer.body, {
      status: 'unavailable',
      checks: { postgres: true, redis: true, rpc: true, follower: false },
      reasons: {
        follower: `reorg deeper than the follower's history: no applied block at or below ${rows[0].block} is canonical`,
      },
    });
  });
});
