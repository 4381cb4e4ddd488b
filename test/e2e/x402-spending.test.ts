import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ConsumerLedger, MemoryStore } from '@chit/sdk';
import { nativeAccount, nativeVerifier } from '@chit/sdk/node';
import { CHIT_SCHEME, ChitClientScheme, SpendingLimitError } from '@chit/x402';
import type { PaymentRequirements } from '@x402/core/types';
import { type Address, bytesToHex, type Hex } from 'viem';

// The buyer's hourly spending limit on its own: no seller, no hub. Each payment is signed for a
// requirement made here (a new agreement each time, so that no response needs to be counted first).
const HUB: Address = '0x00000000000000000000000000000000000C0de1';
const TOKEN: Address = '0x00000000000000000000000000000000000C0de2';
const SELLER: Address = '0x00000000000000000000000000000000000C0de3';
const CHAIN_ID = 31337;
const PRICE = 1_000n;
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
/** A whole minute, so that the payments' minutes are plain to count. */
const T0 = Date.UTC(2026, 11, 5, 8, 0, 0);

const random32 = () => bytesToHex(randomBytes(32));

describe('x402 buyer: the trailing hour’s spending', () => {
  let now: number;
  let store: MemoryStore;
  let scheme: ChitClientScheme;

  const requirement = (): PaymentRequirements => ({
    scheme: CHIT_SCHEME,
    network: `eip155:${CHAIN_ID}`,
    asset: TOKEN,
    amount: PRICE.toString(),
    payTo: SELLER,
    maxTimeoutSeconds: 300,
    extra: {
      hub: HUB,
      hubUrl: 'http://127.0.0.1:1',
      pricePerMiB: '0',
      agreementSalt: random32(),
      nonce: random32(),
      hashlock: random32(),
      expiresAt: Math.floor(now / 1000) + 300,
    },
  });

  const pay = async () => {
    const held = await scheme.authorize(requirement());
    held.release();
    return held;
  };

  const spentEntries = async () => ((await store.get(scheme.key)) as { spent: unknown[] }).spent.length;

  beforeEach(() => {
    now = T0;
    store = new MemoryStore();
    const key = `0x${randomBytes(32).toString('hex')}` as Hex;
    scheme = new ChitClientScheme({
      ledger: new ConsumerLedger({
        hub: HUB,
        chainId: CHAIN_ID,
        account: nativeAccount(key),
        verifier: nativeVerifier(),
      }),
      token: TOKEN,
      maxPricePerRequest: PRICE,
      store,
      limits: { perHour: 100n * PRICE },
      clock: () => now,
    });
  });

  it('keeps the hour per minute: 90 payments in one minute are one stored entry, not 90', async () => {
    for (let i = 0; i < 90; i++) {
      now = T0 + i * 500;
      await pay();
    }
    assert.equal(await scheme.spentLastHour(), 90n * PRICE);
    assert.equal(await spentEntries(), 1);
  });

  it('holds at most 61 minutes, and a payment counts until its minute ends an hour later', async () => {
    // One payment in the middle of each of 90 minutes.
    for (let i = 0; i < 90; i++) {
      now = T0 + i * MINUTE + 30_000;
      await pay();
    }
    assert.ok((await spentEntries()) <= 61, `${await spentEntries()} entries`);
    // At T0 + 90 min + 30 s the hour began at T0 + 30 min + 30 s: minutes 31 to 89 are inside it, and
    // minute 30 (paid at T0 + 30 min + 30 s, ending at T0 + 31 min) still counts: never less than the hour.
    now = T0 + 90 * MINUTE + 30_000;
    assert.equal(await scheme.spentLastHour(), 60n * PRICE);
    now = T0 + 90 * MINUTE + 59_999;
    assert.equal(await scheme.spentLastHour(), 60n * PRICE);
    now = T0 + 91 * MINUTE;
    assert.equal(await scheme.spentLastHour(), 59n * PRICE);
    now = T0 + 90 * MINUTE + HOUR;
    assert.equal(await scheme.spentLastHour(), 0n);
  });

  it('refuses the payment over the limit with nothing signed, and pays again once the hour has moved on', async () => {
    for (let i = 0; i < 100; i++) {
      now = T0 + i * 500;
      await pay();
    }
    now = T0 + 30 * MINUTE;
    await assert.rejects(pay(), (error) => {
      assert.ok(error instanceof SpendingLimitError, String(error));
      assert.equal(error.limit, 'perHour');
      return true;
    });
    assert.equal(await scheme.ledger.total(), 100n * PRICE);
    // The hundred were paid in the minute from T0: they count until T0 + 1 h + 1 min.
    now = T0 + HOUR + MINUTE - 1;
    await assert.rejects(pay(), SpendingLimitError);
    now = T0 + HOUR + MINUTE;
    await pay();
    assert.equal(await scheme.ledger.total(), 101n * PRICE);
    assert.equal(await scheme.spentLastHour(), PRICE);
  });
});
