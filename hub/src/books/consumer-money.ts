// The one definition of a consumer's money at this hub (docs/security.md "The consumer's money"),
// used by the exchange, the consumer view and instant exits alike.
//
// A consumer promise signed for `total` lets anyone holding it and its R move `total - settled` from
// the consumer's channel into the hub (`Hub.settleConsumer`). So what the consumer owes is set by the
// highest total it signed in a promise the hub accepted, not by what the hub credited to providers:
// the hub collects exactly that, and accepts a promise only when the channel can pay it on top of
// pending exits. What is left is the consumer's to spend or take back.

/** The books' figures of one consumer that its money depends on. */
export interface ConsumerFigures {
  /** Channel balance on-chain. */
  balance: bigint;
  /** Collected on-chain so far. */
  settled: bigint;
  /** The highest total of a promise the hub accepted. */
  signedTotal: bigint;
  /** The increments credited to providers: never above `signedTotal`. */
  credited: bigint;
  /** A pending exit request (timelocked): it may take this much. */
  exitAmount: bigint;
  /** Instant exits the operator co-signed and that may still be used. */
  exitReserved: bigint;
}

const positive = (value: bigint): bigint => (value > 0n ? value : 0n);

/** What the consumer's accepted promises still let the hub collect: highest signed total minus settled. */
export function owed(c: Pick<ConsumerFigures, 'settled' | 'signedTotal' | 'credited'>): bigint {
  const signed = c.signedTotal > c.credited ? c.signedTotal : c.credited;
  return positive(signed - c.settled);
}

/** What the channel holds beyond its pending exit and co-signed instant exits. */
export function held(c: Pick<ConsumerFigures, 'balance' | 'exitAmount' | 'exitReserved'>): bigint {
  return positive(c.balance - c.exitAmount - c.exitReserved);
}

/** What the consumer may still promise or take back by an instant exit: held minus owed, at least 0. */
export function available(c: ConsumerFigures): bigint {
  return positive(held(c) - owed(c));
}
