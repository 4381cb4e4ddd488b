import assert from 'node:assert/strict';
import { byteaArray, fromByteaOrNull, numericArray } from '../src/db/bytes';
import { createTestDatabase } from './support/postgres';

describe('array parameters written as text (db/bytes.ts)', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  before(async () => {
    db = await createTestDatabase();
  });
  after(() => db.drop());

  it('reads back through Postgres as the bytea[] and numeric[] they hold, NULLs and empty arrays included', async () => {
    const hexes = ['0x00ff', null, '0xABcd01', '0x', `0x${'7f'.repeat(65)}`];
    const numbers = [0n, -5n, 10n ** 30n, 123456789012345678901234567890n];
    const { rows } = await db.pool.query('SELECT $1::bytea[] AS b, $2::numeric[]::text[] AS n, $3::bytea[] AS e', [
      byteaArray(hexes),
      numericArray(numbers),
      byteaArray([]),
    ]);
    assert.deepEqual(
      rows[0].b.map(fromByteaOrNull),
      hexes.map((hex) => hex?.toLowerCase() ?? null),
    );
    assert.deepEqual(rows[0].n, numbers.map(String));
    assert.deepEqual(rows[0].e, []);
  });

  it('refuses a value that is not hex, so none can add elements to the array', () => {
    for (const bad of ['0x12,\\\\x34', '0x12}', 'ab', '0x1"2', '0xzz']) {
      assert.throws(() => byteaArray(['0x01', bad]), TypeError, bad);
    }
  });
});
