import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { ensureRedis, type RunningService } from '@chit/devstack';
import type { Pool } from 'pg';
import { createPublicClient, getAddress, http } from 'viem';
import { type RunningHub, startHub } from '../src/app';
import { loadConfig } from '../src/config/config';
import { startChain } from './support/chain';
import { exchangeOnce } from './support/exchange';
import { createTestDatabase } from './support/postgres';
import { queuePrefix } from './support/redis';

type Chain = Awaited<ReturnType<typeof startChain>>;

/** Every row of every table of the database, and the tables themselves: what "changes nothing" compares. */
async function snapshot(pool: Pool): Promise<Record<string, string[]>> {
  const { rows: tables } = await pool.query(
    `SELECT table_name FROM information_schema.tables
      WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name`,
  );
  const result: Record<string, string[]> = {};
  for (const { table_name: table } of tables) {
    const { rows } = await pool.query(`SELECT to_jsonb(t)::text AS row FROM "${table}" t`);
    result[table] = rows.map((row) => row.row as string).sort();
  }
  return result;
}

// The books belong to one deployment (chain, Hub contract, the block it was registered in): a hub
// refuses a database that holds another's, even when a fresh local chain repeats the chain id and the
// contract addresses, and leaves that database as it was.
describe('the deployment the books belong to', () => {
  let chain: Chain;
  let other: Chain | undefined;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let redis: RunningService;
  let prefix: string;
  const hubs: RunningHub[] = [];

  before(async function () {
    this.timeout(120_000);
    chain = await startChain();
    db = await createTestDatabase();
    redis = await ensureRedis();
    prefix = queuePrefix(redis.url, 'deployment');
  });
  after(async () => {
    for (const hub of hubs) await hub.close().catch(() => {});
    await db?.drop();
    await redis?.stop();
    chain?.stop();
    other?.stop();
  });

  const env = (on: Chain) => ({
    DATABASE_URL: db.url,
    REDIS_URL: redis.url,
    RPC_URL: on.url,
    HUB_ADDRESS: on.deployment.hub.address,
    OPERATOR_KEY: on.operatorKey,
    PORT: '0',
    LOG_LEVEL: 'silent',
    QUEUE_PREFIX: prefix,
    CONFIRMATIONS: '0',
  });
  const start = async (on: Chain) => {
    const hub = await startHub(loadConfig(env(on)));
    hubs.push(hub);
    return hub;
  };
  const close = async (hub: RunningHub) => {
    await hub.close();
    hubs.splice(hubs.indexOf(hub), 1);
  };
  const database = () => new URL(db.url).pathname.slice(1);

  /** The chain's deployment of the hub: its registration block, as `describe` names it. */
  async function registration(on: Chain) {
    const rpc = createPublicClient({ transport: http(on.url) });
    const block = BigInt(on.deployment.hub.block);
    const { hash } = await rpc.getBlock({ blockNumber: block });
    return {
      block,
      hash,
      text: `hub ${getAddress(on.deployment.hub.address)} on chain 31337, registered in block ${block} (${hash})`,
    };
  }

  const refusal = (theirs: string, ours: string) =>
    [
      `refusing to start: DATABASE_URL's database "${database()}" holds the books of another deployment.`,
      `  that database's: ${theirs}`,
      `  this hub's:      ${ours}`,
      'A database holds the books of one deployment (its replicas share it). Point DATABASE_URL at a database of ' +
        'this deployment, a new empty one for a new deployment, or drop this one if the books of the other ' +
        'deployment are no longer needed (they are its only record of the promises it signed).',
    ].join('\n');

  it('records the block the hub was registered in on the first start', async function () {
    this.timeout(60_000);
    const hub = await start(chain);
    const { block, hash } = await registration(chain);
    const { rows } = await db.pool.query(
      `SELECT chain_id::int, encode(hub, 'hex') AS hub, block::text, '0x' || encode(block_hash, 'hex') AS block_hash
         FROM deployment`,
    );
    assert.deepEqual(rows, [
      {
        chain_id: 31337,
        hub: chain.deployment.hub.address.slice(2).toLowerCase(),
        block: block.toString(),
        block_hash: hash,
      },
    ]);
    // Books to keep: an exchange, and the follower's cursor.
    assert.equal((await exchangeOnce(hub.url, db.pool, 3n)).response.status, 200);
    await close(hub);
  });

  it('starts again on its own deployment, replicas at once', async function () {
    this.timeout(60_000);
    const before = await snapshot(db.pool);
    const replicas = await Promise.all([start(chain), start(chain)]);
    for (const replica of replicas) assert.equal((await fetch(`${replica.url}/ready`)).status, 200);
    const after = await snapshot(db.pool);
    assert.deepEqual(after.deployment, before.deployment);
    assert.deepEqual(after.exchanges, before.exchanges);
    for (const replica of replicas) await close(replica);
  });

  it('refuses the database on a new chain with the same chain id and addresses, and changes nothing', async function () {
    this.timeout(120_000);
    other = await startChain();
    // The case of the issue: `npm start` again, a new anvil, the same deterministic deployment.
    assert.equal(other.deployment.hub.address, chain.deployment.hub.address);
    assert.equal(other.deployment.hub.block, chain.deployment.hub.block);
    const [recorded, current] = [await registration(chain), await registration(other)];
    assert.notEqual(current.hash, recorded.hash);

    const before = await snapshot(db.pool);
    await assert.rejects(start(other), (error: Error) => {
      assert.equal(error.message, refusal(recorded.text, current.text));
      return true;
    });
    assert.deepEqual(await snapshot(db.pool), before);
  });

  it('chit-hub start says so and exits 1, without a stack trace', function () {
    this.timeout(60_000);
    assert.ok(other, 'the previous test starts the other chain');
    const result = spawnSync(process.execPath, [path.join(__dirname, '..', 'dist', 'main.js'), 'start'], {
      env: { PATH: process.env.PATH ?? '', ...env(other) },
      encoding: 'utf8',
      timeout: 50_000,
    });
    assert.equal(result.status, 1, result.stderr);
    assert.match(
      result.stderr,
      /^chit-hub: refusing to start: DATABASE_URL's database "chit_test_\w+" holds the books/,
    );
    assert.match(result.stderr, /Point DATABASE_URL at a database of this deployment/);
    assert.doesNotMatch(result.stderr, /at .*\.js:\d+/);
  });

  describe('with books from before deployments were recorded', () => {
    // Such a database has no `deployment` table: its follower's cursor names the chain and the hub.
    const forget = async () => {
      await db.pool.query('DROP TABLE deployment');
      await db.pool.query('DELETE FROM schema_migrations WHERE version = 4');
    };

    it('refuses them when the blocks their follower applied are not on this chain, and changes nothing', async function () {
      this.timeout(60_000);
      assert.ok(other, 'an earlier test starts the other chain');
      await forget();
      const { rows } = await db.pool.query(
        `SELECT block::text, '0x' || encode(block_hash, 'hex') AS hash FROM chain_cursor WHERE id = $1`,
        [`31337:${chain.deployment.hub.address.toLowerCase()}`],
      );
      assert.equal(rows.length, 1);
      const theirs =
        `hub ${getAddress(chain.deployment.hub.address)} on chain 31337, recorded before deployments were, ` +
        `followed up to block ${rows[0].block} (${rows[0].hash}), a block this chain does not have`;

      const ours = await registration(other);
      const before = await snapshot(db.pool);
      await assert.rejects(start(other), (error: Error) => {
        assert.equal(error.message, refusal(theirs, ours.text));
        return true;
      });
      assert.deepEqual(await snapshot(db.pool), before);
    });

    it('adopts them on their own chain and records the deployment', async function () {
      this.timeout(60_000);
      const hub = await start(chain);
      const { block, hash } = await registration(chain);
      const { rows } = await db.pool.query(
        `SELECT block::text, '0x' || encode(block_hash, 'hex') AS block_hash FROM deployment`,
      );
      assert.deepEqual(rows, [{ block: block.toString(), block_hash: hash }]);
      assert.equal((await fetch(`${hub.url}/ready`)).status, 200);
    });
  });
});
