import assert from 'node:assert/strict';
import { hubAbi, waitForTransaction } from '@chit/sdk';
import { type Address, createPublicClient, createWalletClient, http } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import { toBytea } from '../src/db/bytes';
import { exchangeOnce } from './support/exchange';
import { startTestStack, type TestStack } from './support/hub';

// A closing hub gives its stake and free funds back to the operator when the close delay ends: it must
// not issue promises it may not be there to pay.
describe('a hub that is closing on-chain', () => {
  let stack: TestStack;
  let chain: TestStack['chain'];
  let db: TestStack['db'];
  let hub: TestStack['hub'];

  before(async function () {
    this.timeout(120_000);
    stack = await startTestStack('closing', { FOLLOWER_POLL_MS: '50' });
    ({ chain, db, hub } = stack);
  });
  after(() => stack?.stop());

  it('exchanges while active, then refuses every exchange with HUB_CLOSING once the operator asked to close, crediting nothing', async () => {
    const before = await exchangeOnce(hub.url, db.pool, 5n);
    assert.equal(before.response.status, 200);

    const rpc = createPublicClient({ chain: foundry, transport: http(chain.url) });
    const operator = createWalletClient({
      account: privateKeyToAccount(chain.operatorKey),
      chain: foundry,
      transport: http(chain.url),
    });
    const hash = await operator.writeContract({
      address: chain.deployment.hub.address as Address,
      abi: hubAbi,
      functionName: 'requestClose',
    });
    await waitForTransaction(rpc, { hash });
    for (let i = 0; hub.context.hubStatus.status !== 'closing'; i++) {
      assert.ok(i < 100, `the status is read again (still ${hub.context.hubStatus.status})`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }

    const { consumer, response } = await exchangeOnce(hub.url, db.pool, 5n);
    assert.equal(response.status, 409);
    assert.deepEqual(await response.json(), {
      code: 'HUB_CLOSING',
      message: 'This hub is closing on-chain and issues no new promises',
      details: { status: 'closing' },
    });
    const { rows } = await db.pool.query(
      'SELECT signed_total::text, credited::text, (SELECT count(*)::int FROM exchanges WHERE consumer = $1) AS exchanges FROM consumers WHERE address = $1',
      [toBytea(consumer.address.toLowerCase())],
    );
    assert.deepEqual(rows, [{ signed_total: '0', credited: '0', exchanges: 0 }]);
  });
});
