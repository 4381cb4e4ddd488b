import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { decodeHubAnswer } from '@chit/sdk';
import { Pool } from 'pg';
import { toBytea } from '../src/db/bytes';
import { loadMigrations, migrate } from '../src/db/migrator';
import { SettlementRepository } from '../src/settlement/settlement.repository';
import { view } from '../src/settlement/settlement.types';

// 0005_settlement_failure_code on books written before it: each free-text error gets the code the
// executor would give it now, the message stays, and the hub serves both.

const ALICE = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8';
const TX = `0x${'ab'.repeat(32)}`;

/** Each old row: its kind, status and free-text error, and the code it must get. */
const OLD_ROWS: { kind: string; status: string; error: string | null; code: string | null }[] = [
  // Decoded reverts, stored as the SDK's short message (alone, or after "transaction … reverted: ").
  { kind: 'identity', status: 'failed', error: `${ALICE} is not registered`, code: 'RegistryIdentityNotRegistered' },
  { kind: 'consumer', status: 'failed', error: 'The amount is zero', code: 'HubZeroAmount' },
  {
    kind: 'provider',
    status: 'retrying',
    error: `transaction ${TX} reverted: The hub's free funds hold 1, less than the 2 asked for`,
    code: 'HubInsufficientFreeFunds',
  },
  {
    kind: 'provider',
    status: 'failed',
    error: `The signature is not from ${ALICE}: It recovers to ${ALICE}: it was signed by another key`,
    code: 'HubInvalidSignature',
  },
  {
    kind: 'beneficiary',
    status: 'failed',
    error: `The signature is not from ${ALICE}: It recovers to ${ALICE}: it was signed by another key`,
    code: 'RegistryInvalidSignature',
  },
  // A bare contract error name is itself.
  { kind: 'provider', status: 'failed', error: 'HubInsufficientFreeFunds', code: 'HubInsufficientFreeFunds' },
  // A revert nothing decoded.
  {
    kind: 'consumer',
    status: 'retrying',
    error: `transaction ${TX} reverted: The contract reverted with unknown data 0xdeadbeef`,
    code: 'REVERTED',
  },
  // The hub's own messages.
  {
    kind: 'consumer',
    status: 'failed',
    error: `the channel of ${ALICE} is empty: nothing to collect`,
    code: 'NOTHING_TO_COLLECT',
  },
  { kind: 'provider', status: 'retrying', error: `transaction ${TX} did not settle it`, code: 'NOT_SETTLED' },
  { kind: 'consumer', status: 'retrying', error: 'every transaction with nonce 3 was refused', code: 'DROPPED' },
  {
    kind: 'consumer',
    status: 'failed',
    error: `nonce 3 of ${ALICE.toLowerCase()} was used by a transaction the hub did not send`,
    code: 'REPLACED',
  },
  {
    kind: 'provider',
    status: 'submitted',
    error: `transaction ${TX} is no longer in block 5 (reorg): sending it again`,
    code: 'REORGED',
  },
  {
    kind: 'consumer',
    status: 'failed',
    error: `no exchange ${TX} of consumer ${ALICE}`,
    code: 'INVALID_CLAIM',
  },
  {
    kind: 'identity',
    status: 'failed',
    error: "the token refuses the identity's permit of the relayer fee: ERC2612InvalidSigner",
    code: 'PERMIT_REFUSED',
  },
  {
    kind: 'provider',
    status: 'retrying',
    error: "the hub's free funds (1) do not cover 2 yet: consumer settlements first",
    code: 'WAITING_FOR_FREE_FUNDS',
  },
  // Anything else.
  { kind: 'consumer', status: 'retrying', error: 'fetch failed: connect ECONNREFUSED', code: 'ERROR' },
  { kind: 'consumer', status: 'confirmed', error: null, code: null },
];

describe('migration 0005: a settlement failure code', () => {
  let admin: Pool;
  let pool: Pool;
  let name: string;

  before(async () => {
    const url = new URL(process.env.CHIT_TEST_POSTGRES_URL ?? '');
    admin = new Pool({ connectionString: url.toString(), max: 1 });
    name = `chit_test_${randomBytes(6).toString('hex')}`;
    await admin.query(`CREATE DATABASE ${name}`);
    url.pathname = `/${name}`;
    pool = new Pool({ connectionString: url.toString(), max: 2 });
    pool.on('error', () => {});
  });

  after(async () => {
    await pool?.end();
    await admin?.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin?.end();
  });

  it('codes the free-text errors of the rows written before it, keeps their messages, and the hub serves both', async () => {
    const earlier = loadMigrations().filter((migration) => migration.version < 5);
    assert.deepEqual(
      earlier.map((migration) => migration.version),
      [1, 2, 3, 4],
    );
    await migrate(pool, earlier);
    for (const [i, row] of OLD_ROWS.entries()) {
      await pool.query(
        `INSERT INTO settlements (id, kind, subject, amount, status, error, payload)
         VALUES ($1, $2, $3, $4, $5, $6, '{}')`,
        [`old-${i}`, row.kind, toBytea(ALICE.toLowerCase() as `0x${string}`), i, row.status, row.error],
      );
    }

    const upTo5 = loadMigrations().filter((migration) => migration.version <= 5);
    assert.deepEqual(await migrate(pool, upTo5), ['0005_settlement_failure_code']);

    const { rows } = await pool.query(`SELECT error, error_code FROM settlements ORDER BY amount`);
    assert.deepEqual(
      rows.map((row) => ({ error: row.error, code: row.error_code })),
      OLD_ROWS.map(({ error, code }) => ({ error, code })),
    );

    // The hub reads and serves the code with the message, in the shape the SDK parses.
    const repository = new SettlementRepository(pool);
    const served = view((await repository.get('old-0'))!);
    assert.deepEqual(served.error, { code: 'RegistryIdentityNotRegistered', message: `${ALICE} is not registered` });
    assert.deepEqual(decodeHubAnswer('settlement', JSON.parse(JSON.stringify(served))).error, served.error);
    assert.equal(view((await repository.get(`old-${OLD_ROWS.length - 1}`))!).error, null);
  });

  it('keeps a message and its code together', async () => {
    await assert.rejects(
      pool.query(`UPDATE settlements SET error = 'no code' WHERE id = $1`, [`old-${OLD_ROWS.length - 1}`]),
      /settlements_error_code/,
    );
    await assert.rejects(
      pool.query(`UPDATE settlements SET error = NULL WHERE id = 'old-0'`),
      /settlements_error_code/,
    );
  });
});
