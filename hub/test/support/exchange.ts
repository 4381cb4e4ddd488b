import { encodeMessage, newHashlock, sealPreimage, signConsumerPromise } from '@chit/sdk';
import type { Pool } from 'pg';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { toBytea } from '../../src/db/bytes';

/**
 * A fresh consumer with a channel of 1 token in the books (as the chain follower would record a
 * deposit) signs a promise of `total` to a fresh provider, and the provider's exchange request for it
 * is built for the hub at `url` (not sent). Returns the parties, the hub's info and the request body.
 */
export async function prepareExchange(url: string, pool: Pool, total: bigint) {
  const consumer = privateKeyToAccount(generatePrivateKey());
  const provider = privateKeyToAccount(generatePrivateKey());
  await pool.query('INSERT INTO consumers (address, balance) VALUES ($1, $2)', [
    toBytea(consumer.address.toLowerCase()),
    (10n ** 18n).toString(),
  ]);
  const info = (await (await fetch(`${url}/v1/info`)).json()) as {
    hub: `0x${string}`;
    chainId: number;
    operator: `0x${string}`;
    publicKey: `0x${string}`;
    stake: string;
  };
  const { preimage, hashlock } = newHashlock();
  const promise = await signConsumerPromise(consumer, {
    hub: info.hub,
    chainId: info.chainId,
    consumer: consumer.address,
    total,
    hashlock,
    agreement: { provider: provider.address, id: hashlock, total },
  });
  const body = { promise: encodeMessage(promise), encryptedPreimage: sealPreimage(info.publicKey, preimage) };
  return { consumer, provider, info, body };
}

/** {@link prepareExchange}, then the exchange is posted to the hub at `url`: adds the HTTP answer. */
export async function exchangeOnce(url: string, pool: Pool, total: bigint) {
  const { body, ...prepared } = await prepareExchange(url, pool, total);
  const response = await fetch(`${url}/v1/exchange`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { ...prepared, response };
}
