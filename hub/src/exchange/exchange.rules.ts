import { keccak256Bytes } from '@chit/sdk';
import { bytesToHex, getAddress, hexToBytes } from 'viem';
import { available, held, owed } from '../books/consumer-money';
import { HubError } from '../errors/hub-error';

// The hub's exchange rules (docs/design.md "Exchange rules", docs/protocol.md "Exchange"), as a pure function over
// the rows one batch has locked. The repository loads and locks; this decides; the repository writes.

type Hex = `0x${string}`;

/** keccak256 of hex bytes through the SDK's keccak: native once `enableNativeHashing()` ran. */
export const keccakHex = (hex: Hex): Hex => bytesToHex(keccak256Bytes(hexToBytes(hex)));

export interface ConsumerState {
  address: Hex;
  balance: bigint;
  settled: bigint;
  exitAmount: bigint;
  /** Reserved for instant exits the operator co-signed (instant_exits): counted like a pending exit. */
  exitReserved: bigint;
  signedTotal: bigint;
  credited: bigint;
  bestHashlock: Hex | null;
}

export interface ProviderState {
  address: Hex;
  promised: bigint;
  latestHashlock: Hex | null;
  unrevealedHashlock: Hex | null;
}

export interface AgreementState {
  provider: Hex;
  agreementId: Hex;
  consumer: Hex;
  creditedTotal: bigint;
}

/** An exchange as recorded: one per hashlock. */
export interface ExchangeRecord {
  hashlock: Hex;
  provider: Hex;
  consumer: Hex;
  agreementId: Hex;
  agreementTotal: bigint;
  consumerTotal: bigint;
  consumerSignature: Hex;
  increment: bigint;
  hubTotal: bigint;
  encryptedPreimage: Hex;
  preimage: Hex | null;
}

/** A request that passed the stateless checks (format, hub, chain, consumer signature). */
export interface ExchangeCandidate {
  hashlock: Hex;
  provider: Hex;
  consumer: Hex;
  agreementId: Hex;
  agreementTotal: bigint;
  consumerTotal: bigint;
  consumerSignature: Hex;
  encryptedPreimage: Hex;
  /** R, opened from `encryptedPreimage` and checked against `hashlock` before the batch. */
  preimage: Hex;
  previousPreimage?: Hex;
}

/** What one batch has locked, keyed by lower-case hex. */
export interface BatchState {
  consumers: Map<Hex, ConsumerState>;
  providers: Map<Hex, ProviderState>;
  agreements: Map<string, AgreementState>;
  /** Earlier exchanges with the candidates' hashlocks or the providers' unrevealed hashlocks. */
  exchanges: Map<Hex, ExchangeRecord>;
}

/**
 * The rows a batch's decisions read, as they were before it decided: what its write checks are unchanged
 * (`ExchangeRepository`). Every credit writes its consumer, provider and agreement, so a batch whose
 * candidates all pass read nothing it does not write.
 */
export type BooksRead = Omit<BatchState, 'exchanges'>;

/** A copy of `state`'s rows, kept before the rules replace them. */
export function booksReadOf(state: BooksRead): BooksRead {
  return {
    consumers: new Map(state.consumers),
    providers: new Map(state.providers),
    agreements: new Map(state.agreements),
  };
}

export type ExchangeOutcome = { ok: true; hubTotal: bigint; repeated: boolean } | { ok: false; error: HubError };

/** The rows a batch must write after its decisions. */
export interface BatchWrites {
  consumers: Map<Hex, ConsumerState>;
  providers: Map<Hex, ProviderState>;
  agreements: Map<string, AgreementState>;
  exchanges: ExchangeRecord[];
  /** R learnt for earlier exchanges: hashlock → preimage. */
  reveals: Map<Hex, Hex>;
}

export const agreementKey = (provider: Hex, agreementId: Hex): string => `${provider}:${agreementId}`;

/**
 * Decides every candidate of a batch in arrival order against the locked state, updating it as it
 * goes, so later candidates see earlier credits. `openPreimage` decrypts an exchange's encrypted R
 * with the hub's key (undefined when it cannot).
 */
export function decideExchanges(
  candidates: ExchangeCandidate[],
  state: BatchState,
  openPreimage: (box: Hex) => Hex | undefined,
): { outcomes: ExchangeOutcome[]; writes: BatchWrites } {
  const writes: BatchWrites = {
    consumers: new Map(),
    providers: new Map(),
    agreements: new Map(),
    exchanges: [],
    reveals: new Map(),
  };
  const outcomes = candidates.map((candidate) => {
    try {
      return decide(candidate, state, writes, openPreimage);
    } catch (error) {
      if (error instanceof HubError) return { ok: false as const, error };
      throw error;
    }
  });
  return { outcomes, writes };
}

function decide(
  c: ExchangeCandidate,
  state: BatchState,
  writes: BatchWrites,
  openPreimage: (box: Hex) => Hex | undefined,
): ExchangeOutcome {
  const earlier = state.exchanges.get(c.hashlock);
  if (earlier) {
    if (
      earlier.provider === c.provider &&
      earlier.consumer === c.consumer &&
      earlier.agreementId === c.agreementId &&
      earlier.agreementTotal === c.agreementTotal &&
      earlier.consumerTotal === c.consumerTotal &&
      earlier.consumerSignature === c.consumerSignature
    ) {
      return { ok: true, hubTotal: earlier.hubTotal, repeated: true };
    }
    throw new HubError('HASHLOCK_REUSED', 'This hashlock was already exchanged for another promise', {
      hashlock: c.hashlock,
    });
  }

  const consumer = state.consumers.get(c.consumer);
  if (!consumer) {
    throw new HubError('UNKNOWN_CONSUMER', `${getAddress(c.consumer)} has no channel at this hub: deposit first`, {
      consumer: getAddress(c.consumer),
    });
  }

  const key = agreementKey(c.provider, c.agreementId);
  const agreement = state.agreements.get(key);
  if (agreement && agreement.consumer !== c.consumer) {
    throw new HubError('AGREEMENT_CONFLICT', 'This agreement id belongs to another consumer of this provider', {
      provider: getAddress(c.provider),
      agreementId: c.agreementId,
    });
  }
  const increment = c.agreementTotal - (agreement?.creditedTotal ?? 0n);
  if (increment <= 0n) {
    throw new HubError('PROMISE_TOO_LOW', 'The promise adds nothing to what this agreement was credited', {
      agreementTotal: c.agreementTotal.toString(),
      credited: (agreement?.creditedTotal ?? 0n).toString(),
    });
  }

  // The consumer's money (books/consumer-money.ts): after this promise it owes its highest signed
  // total, which its channel must hold on top of pending exits, so the hub collects what it credits.
  const signedTotal = c.consumerTotal > consumer.signedTotal ? c.consumerTotal : consumer.signedTotal;
  const credited = consumer.credited + increment;
  if (credited > signedTotal) {
    throw new HubError('OVERSPEND', 'The consumer has signed for less than its promises to providers add up to', {
      signedTotal: signedTotal.toString(),
      credited: credited.toString(),
    });
  }
  const owing = owed({ ...consumer, signedTotal, credited });
  if (owing > held(consumer)) {
    throw new HubError('OVERSPEND', 'The consumer has signed for more than its channel holds', {
      owed: owing.toString(),
      held: held(consumer).toString(),
      available: available(consumer).toString(),
    });
  }

  const provider = state.providers.get(c.provider) ?? {
    address: c.provider,
    promised: 0n,
    latestHashlock: null,
    unrevealedHashlock: null,
  };
  if (provider.unrevealedHashlock) {
    const previous = learnPrevious(provider.unrevealedHashlock, c.previousPreimage, state, openPreimage);
    if (!previous) {
      throw new HubError('PREVIOUS_R_NOT_REVEALED', 'Reveal the R of your previous exchange first', {
        hashlock: provider.unrevealedHashlock,
      });
    }
    writes.reveals.set(provider.unrevealedHashlock, previous);
  }

  // Every check passed: credit, in the state later candidates see and in the writes.
  const hubTotal = provider.promised + increment;
  const nextConsumer: ConsumerState = {
    ...consumer,
    signedTotal,
    credited,
    bestHashlock: c.consumerTotal > consumer.signedTotal ? c.hashlock : consumer.bestHashlock,
  };
  const nextProvider: ProviderState = {
    address: c.provider,
    promised: hubTotal,
    latestHashlock: c.hashlock,
    // R came with the exchange: nothing is left to reveal.
    unrevealedHashlock: null,
  };
  const nextAgreement: AgreementState = {
    provider: c.provider,
    agreementId: c.agreementId,
    consumer: c.consumer,
    creditedTotal: c.agreementTotal,
  };
  const record: ExchangeRecord = {
    hashlock: c.hashlock,
    provider: c.provider,
    consumer: c.consumer,
    agreementId: c.agreementId,
    agreementTotal: c.agreementTotal,
    consumerTotal: c.consumerTotal,
    consumerSignature: c.consumerSignature,
    increment,
    hubTotal,
    encryptedPreimage: c.encryptedPreimage,
    preimage: c.preimage,
  };
  state.consumers.set(c.consumer, nextConsumer);
  state.providers.set(c.provider, nextProvider);
  state.agreements.set(key, nextAgreement);
  state.exchanges.set(c.hashlock, record);
  writes.consumers.set(c.consumer, nextConsumer);
  writes.providers.set(c.provider, nextProvider);
  writes.agreements.set(key, nextAgreement);
  writes.exchanges.push(record);
  return { ok: true, hubTotal, repeated: false };
}

/**
 * The R of the provider's unrevealed exchange: sent along, already known, or opened from its box. Only
 * exchanges recorded before boxes were opened at exchange time can be unrevealed.
 */
function learnPrevious(
  hashlock: Hex,
  sent: Hex | undefined,
  state: BatchState,
  openPreimage: (box: Hex) => Hex | undefined,
): Hex | undefined {
  if (sent && keccakHex(sent) === hashlock) return sent;
  const previous = state.exchanges.get(hashlock);
  if (!previous) return undefined;
  if (previous.preimage) return previous.preimage;
  const opened = openPreimage(previous.encryptedPreimage);
  return opened && keccakHex(opened) === hashlock ? opened : undefined;
}
