import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createWalletClient, custom, http, parseEther } from 'viem';
import { waitForTransactionReceipt } from 'viem/actions';
import { foundry } from 'viem/chains';
import { waitForTransaction } from '../src/index.js';
import { startChain, type TestChain } from './support/chain.js';

// A node can answer a receipt query with null just after mining the transaction (seen with anvil).
// That fault cannot be caused on demand, so this node forgets the receipt for its first few queries.
describe('waitForTransaction when the node answers a mined receipt with null', () => {
  let chain: TestChain;
  before(async () => {
    chain = await startChain();
  });
  after(() => chain.stop());

  function forgetfulClient(forget: number) {
    const node = http(chain.url)({ chain: foundry, retryCount: 0 });
    let forgotten = 0;
    return createWalletClient({
      account: chain.account(5),
      chain: foundry,
      pollingInterval: 50,
      transport: custom({
        async request({ method, params }) {
          if (method === 'eth_getTransactionReceipt') {
            const receipt = await node.request({ method, params });
            if (receipt && forgotten < forget) {
              forgotten++;
              return null;
            }
            return receipt;
          }
          return node.request({ method, params } as never);
        },
      }),
    });
  }

  it('returns the receipt once the node has it', async () => {
    const client = forgetfulClient(8);
    const hash = await client.sendTransaction({ to: chain.account(6).address, value: parseEther('1') });
    const receipt = await waitForTransaction(client, { hash, timeout: 20_000 });
    assert.equal(receipt.transactionHash, hash);
    assert.equal(receipt.status, 'success');
  });

  it("is where viem's own wait gives up (the reason for the fallback)", async () => {
    const client = forgetfulClient(8);
    const hash = await client.sendTransaction({ to: chain.account(6).address, value: parseEther('1') });
    await assert.rejects(waitForTransactionReceipt(client, { hash, timeout: 3_000 }));
  });
});
