import { newHashlock, type SignedConsumerPromise, sealPreimage, signConsumerPromise } from '@chit/sdk';
import type { Pool } from 'pg';
import { type Hex, keccak256, toHex } from 'viem';
import { generatePrivateKey, type PrivateKeyAccount, privateKeyToAccount } from 'viem/accounts';
import { toBytea } from '../../src/db/bytes';

// The parties of an exchange as the hub's tests make them: a consumer whose channel the chain follower
// would have recorded, a provider with an agreement, and the bodies a provider sends.

export const testScope = { hub: '0x4859E602e6ffac40ef337bB9B9Df6a4D9CF43b51', chainId: 31337 } as const;
export const ether = (n: number): bigint => BigInt(n) * 10n ** 18n;

/** A consumer with a channel of `balance` and a pending exit of `exitAmount`, as the chain follower records it. */
export async function consumerWith(pool: Pool, balance: bigint, exitAmount = 0n): Promise<PrivateKeyAccount> {
  const account = privateKeyToAccount(generatePrivateKey());
  await pool.query('INSERT INTO consumers (address, balance, exit_amount) VALUES ($1, $2, $3)', [
    toBytea(account.address.toLowerCase()),
    balance.toString(),
    exitAmount.toString(),
  ]);
  return account;
}

export interface TestProvider {
  account: PrivateKeyAccount;
  agreementId: Hex;
  /** The R of each invoice it sent. */
  preimages: Hex[];
}

/** A provider with its own agreement id. */
export function newProvider(): TestProvider {
  const account = privateKeyToAccount(generatePrivateKey());
  return { account, agreementId: keccak256(toHex(account.address)) as Hex, preimages: [] };
}

/** A consumer promise of `total` paying `p`'s agreement up to `agreementTotal`, on a new hashlock (unless overridden). */
export async function promiseOf(
  consumer: PrivateKeyAccount,
  p: TestProvider,
  total: bigint,
  agreementTotal: bigint,
  overrides: Partial<SignedConsumerPromise> = {},
): Promise<{ signed: SignedConsumerPromise; preimage: Hex }> {
  const { preimage, hashlock } = newHashlock();
  p.preimages.push(preimage);
  const signed = await signConsumerPromise(consumer, {
    ...testScope,
    consumer: consumer.address,
    total,
    hashlock,
    agreement: { provider: p.account.address, id: p.agreementId, total: agreementTotal },
    ...overrides,
  });
  return { signed, preimage };
}

/** The body of `POST /v1/exchange` for `signed`, its R sealed to the hub's `publicKey`. */
export function exchangeBody(publicKey: Hex, signed: SignedConsumerPromise, preimage: Hex, extra = {}) {
  return {
    promise: {
      ...signed,
      total: signed.total.toString(),
      agreement: { ...signed.agreement, total: signed.agreement.total.toString() },
    },
    encryptedPreimage: sealPreimage(publicKey, preimage),
    ...extra,
  };
}

/** A consumer's credited and signed totals in the books, as text. */
export async function consumerBooks(pool: Pool, consumer: string): Promise<{ credited: string; signed_total: string }> {
  const { rows } = await pool.query('SELECT credited::text, signed_total::text FROM consumers WHERE address = $1', [
    toBytea(consumer.toLowerCase()),
  ]);
  return rows[0];
}
