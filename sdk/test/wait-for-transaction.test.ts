import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createWalletClient, custom, http, parseEther } from 'viem';
import { getTransactionReceipt, waitForTransactionReceipt } from 'viem/actions';
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

  it("returns the receipt when the client's own receipt action is another copy of viem's (a CommonJS caller)", async () => {
    // A caller that loads viem as CommonJS gives this ESM SDK a client whose actions throw that copy's
    // error classes: the wait must know "receipt not found" by its name, not by its class.
    class TransactionReceiptNotFoundError extends Error {
      override name = 'TransactionReceiptNotFoundError';
    }
    const base = forgetfulClient(8);
    const client = base.extend((inner) => ({
      async getTransactionReceipt(args: Parameters<typeof getTransactionReceipt>[1]) {
        try {
          return await getTransactionReceipt(inner, args);
        } catch {
          throw new TransactionReceiptNotFoundError(`Transaction receipt with hash "${args.hash}" could not be found.`);
        }
      },
    }));
    const hash = await client.sendTransaction({ to: chain.account(6).address, value: parseEther('1') });
    const receipt = await waitForTransaction(client, { hash, timeout: 20_000 });
    assert.equal(receipt.transactionHash, hash);
  });

  it("is where viem's own wait gives up (the reason for the fallback)", async () => {
    const client = forgetfulClient(8);
    const hash = await client.sendTransaction({ to: chain.account(6).address, value: parseEther('1') });
    await assert.rejects(waitForTransactionReceipt(client, { hash, timeout: 3_000 }));
  });
});
