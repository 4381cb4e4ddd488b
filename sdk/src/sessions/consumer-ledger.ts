import { type Address, bytesToHex, getAddress, type Hex } from 'viem';
import { z } from 'zod';
import { InvalidSignatureError } from '../errors/protocol.js';
import { InvalidOptionError } from '../hub-client/errors.js';
import { encodeMessage, wireSchemas } from '../protocol/codec.js';
import { keccak256Bytes } from '../protocol/keccak.js';
import { type DigestSigner, signConsumerPromise, type TypedDataSigner } from '../protocol/sign.js';
import type { Invoice, SignedConsumerPromise } from '../protocol/types.js';
import { jsVerifier, type Verifier } from '../protocol/verifier.js';
import { recoverConsumerPromiseSigner } from '../protocol/verify.js';
import { InvoiceRejectedError, StoredStateError } from './errors.js';
import { Mutex } from './mutex.js';
import { readState, storedAmount, storedBytes32 } from './state.js';
import { MemoryStore, type Store } from './store.js';
import { sameHex } from './util.js';

/** Options of a {@link ConsumerLedger}. */
export interface ConsumerLedgerOptions {
  /** The Hub contract the consumer's channel is at. */
  hub: Address;
  chainId: number;
  /** The consumer's key: a viem LocalAccount, or anything with its address that signs typed data. */
  account: TypedDataSigner & { address: Address };
  /** Where the ledger keeps its state. Default: in memory (lost when the process ends). */
  store?: Store;
  /** The key of the ledger's document in `store`. Default `chit/consumer/<chainId>/<hub>/<consumer>`. */
  key?: string;
  /** Hashlocks remembered per agreement across restarts, to refuse a reused one. Default 256. */
  hashlockMemory?: number;
  /** Checks each signature before it leaves. Default: the JavaScript verifier. */
  verifier?: Verifier;
}

/** What the ledger signed for an invoice. */
export interface ConsumerPayment {
  promise: SignedConsumerPromise;
  /** What this promise added to the agreement and to the consumer's total (0 for a repeat). */
  increment: bigint;
  /** True when the invoice was the very one already paid: the same promise is returned again. */
  repeated: boolean;
}

interface AgreementEntry {
  paid: bigint;
  hashlocks: Hex[];
  last: SignedConsumerPromise | null;
}

interface LedgerState {
  total: bigint;
  agreements: Record<string, AgreementEntry>;
}

/** An agreement's entry: what was paid in it, its last hashlocks and its last promise. */
const entrySchema = z.strictObject({
  paid: storedAmount,
  hashlocks: z.array(storedBytes32),
  last: wireSchemas.consumerPromise.nullable(),
});

const scopeFields = { hub: z.string(), chainId: z.number(), consumer: z.string(), total: storedAmount };

/**
 * The ledger's document. Version 1 (written before) held every agreement's entry, so it grew with the
 * agreements and was written whole at each payment. Version 2 is an index: the consumer's total as of
 * its last write and the agreements that have an entry, each entry under a key of its own
 * (`<key>/agreements/<the first 16 bytes of keccak256("<provider>:<agreementId>"), hex>`), so that a
 * payment writes one entry.
 */
const documentSchema = z.discriminatedUnion('version', [
  z.strictObject({ version: z.literal(1), ...scopeFields, agreements: z.record(z.string(), entrySchema) }),
  z.strictObject({ version: z.literal(2), ...scopeFields, agreements: z.array(z.string()) }),
]);

/**
 * The key of an agreement in a consumer ledger: provider and agreement id, lower-cased.
 *
 * @example
 * agreementKey(invoice.provider, invoice.agreementId); // '0xaf29…:0xa1a1…'
 */
export function agreementKey(provider: Address, agreementId: Hex): string {
  return `${provider.toLowerCase()}:${agreementId.toLowerCase()}`;
}

/**
 * A consumer's books at one hub: its cumulative total promised to the hub across all its providers,
 * and what it paid in each agreement. Every {@link ConsumerSession} of the consumer at this hub shares
 * one ledger, which pays invoices one at a time: the total grows by each accepted increment exactly
 * once, even when several providers are paid at the same moment, and every promise carries a total
 * higher than the one before.
 *
 * Each payment is written to the store before its promise is returned, so a promise that leaves the
 * process is never signed again with another total. An invoice that was already paid (same hashlock,
 * same total) gets the same promise back; any other reuse of a hashlock is refused.
 *
 * @example
 * const ledger = new ConsumerLedger({ hub, chainId, account: privateKeyToAccount(key), store });
 * const a = new ConsumerSession({ ledger, provider: providerA, prices: pricesA });
 * const b = new ConsumerSession({ ledger, provider: providerB, prices: pricesB });
 * await Promise.all([a.pay(invoiceA), b.pay(invoiceB)]);
 * await ledger.total(); // what a and b were paid, together
 */
export class ConsumerLedger {
  readonly hub: Address;
  readonly chainId: number;
  readonly consumer: Address;
  readonly key: string;
  readonly #account: TypedDataSigner;
  readonly #store: Store;
  readonly #memory: number;
  readonly #verifier: Verifier;
  readonly #mutex = new Mutex();
  readonly #hashlocks = new Set<string>();
  readonly #sessions = new Set<string>();
  #state: LedgerState | undefined;
  /** The stored document is version 1: the next write first writes every entry and a version 2 index. */
  #version1 = false;

  constructor(options: ConsumerLedgerOptions) {
    this.hub = getAddress(options.hub);
    this.chainId = options.chainId;
    this.consumer = getAddress(options.account.address);
    this.#account = options.account;
    this.#store = options.store ?? new MemoryStore();
    this.key = options.key ?? `chit/consumer/${this.chainId}/${this.hub.toLowerCase()}/${this.consumer.toLowerCase()}`;
    this.#memory = options.hashlockMemory ?? 256;
    if (!Number.isInteger(this.#memory) || this.#memory < 1) {
      throw new InvalidOptionError('hashlockMemory', `expected an integer >= 1, got ${this.#memory}`);
    }
    this.#verifier = options.verifier ?? jsVerifier;
  }

  /**
   * The consumer's cumulative total promised to this hub (the `total` of its latest promise).
   *
   * @example
   * const total = await ledger.total();
   */
  total(): Promise<bigint> {
    return this.#mutex.run(async () => (await this.#load()).total);
  }

  /**
   * What the consumer has paid in an agreement so far (its agreement total), 0 for a new one.
   *
   * @example
   * const paid = await ledger.paid(provider, agreementId);
   */
  paid(provider: Address, agreementId: Hex): Promise<bigint> {
    return this.#mutex.run(async () => {
      const state = await this.#load();
      return state.agreements[agreementKey(provider, agreementId)]?.paid ?? 0n;
    });
  }

  /**
   * Signs the consumer promise that pays `invoice`: the consumer's total raised by the invoice's
   * increment, bound to the invoice's agreement and hashlock. `check` runs inside the ledger's lock
   * with what the agreement was paid so far, before anything is signed; it throws to refuse (a
   * {@link ConsumerSession} checks prices there). Prefer a session: it does the pricing checks.
   *
   * @throws {InvoiceRejectedError} for another hub or chain, a reused hashlock, or a total that does not
   * grow; whatever `check` throws. Nothing is signed or stored then.
   * @example
   * const { promise } = await ledger.payInvoice(invoice, (paid) => {
   *   if (invoice.agreementTotal - paid > budget) throw new Error('over budget');
   * });
   */
  payInvoice(invoice: Invoice, check?: (paid: bigint) => void): Promise<ConsumerPayment> {
    return this.#mutex.run(async () => {
      const state = await this.#load();
      this.#checkScope(invoice);
      const key = agreementKey(invoice.provider, invoice.agreementId);
      const entry = state.agreements[key] ?? { paid: 0n, hashlocks: [], last: null };
      const hashlock = invoice.hashlock.toLowerCase() as Hex;
      const last = entry.last;
      if (last && sameHex(last.hashlock, hashlock) && last.agreement.total === invoice.agreementTotal) {
        return { promise: last, increment: 0n, repeated: true };
      }
      if (this.#hashlocks.has(hashlock) || entry.hashlocks.includes(hashlock)) {
        throw new InvoiceRejectedError(
          'REUSED_HASHLOCK',
          invoice,
          `Reused hashlock: ${hashlock} was already paid`,
          'Every invoice must carry a fresh hashlock keccak256(R) for a new random R; the provider should invoice again with one.',
        );
      }
      if (invoice.agreementTotal < entry.paid) {
        throw new InvoiceRejectedError(
          'DECREASING_TOTAL',
          invoice,
          `Decreasing total: the invoice asks ${invoice.agreementTotal} for agreement ${invoice.agreementId}, which was paid ${entry.paid} already`,
          'Agreement totals are cumulative and never decrease; the provider should invoice the total due since the agreement began.',
        );
      }
      if (invoice.agreementTotal === entry.paid) {
        throw new InvoiceRejectedError(
          'NOTHING_DUE',
          invoice,
          `Nothing due: agreement ${invoice.agreementId} was paid ${entry.paid} already`,
          'The invoice adds nothing to what was paid; the provider should invoice once more is due.',
        );
      }
      check?.(entry.paid);
      const increment = invoice.agreementTotal - entry.paid;
      const promise = await signConsumerPromise(this.#account, {
        hub: this.hub,
        chainId: this.chainId,
        consumer: this.consumer,
        total: state.total + increment,
        hashlock,
        agreement: { provider: getAddress(invoice.provider), id: invoice.agreementId, total: invoice.agreementTotal },
      });
      this.#checkSigner(promise);
      const next: LedgerState = {
        total: promise.total,
        agreements: {
          ...state.agreements,
          [key]: {
            paid: invoice.agreementTotal,
            hashlocks: [...entry.hashlocks, hashlock].slice(-this.#memory),
            last: promise,
          },
        },
      };
      // A new agreement is listed (with the total before this payment) before its entry is written:
      // the entry, whose last promise carries the new total, is what makes the payment count.
      if (this.#version1) await this.#upgrade(state);
      if (!state.agreements[key]) await this.#writeIndex({ total: state.total, agreements: next.agreements });
      await this.#writeEntry(key, next.agreements[key]!);
      this.#state = next;
      this.#hashlocks.add(hashlock);
      return { promise, increment, repeated: false };
    });
  }

  /**
   * Signs the agreement's last promise again for another hashlock, when the provider refused the
   * invoice it paid (the invoice was not the provider's, so the promise was never exchanged): the same
   * consumer total and agreement total, bound to `invoice.hashlock`. Nothing more is paid: the hub
   * credits an agreement total once, so at most one of the two promises is ever credited.
   *
   * @param refused The hashlock of the agreement's last promise, whose invoice the provider refused.
   * @throws {InvoiceRejectedError} `NOT_LAST` when `refused` is not the hashlock of the agreement's last
   * promise or `invoice.agreementTotal` is not its agreement total; `REUSED_HASHLOCK`; another hub or
   * chain. Nothing is signed or stored then.
   * @example
   * const { promise } = await ledger.reissue(freshInvoice, refusedHashlock);
   */
  reissue(invoice: Invoice, refused: Hex): Promise<ConsumerPayment> {
    return this.#mutex.run(async () => {
      const state = await this.#load();
      this.#checkScope(invoice);
      const key = agreementKey(invoice.provider, invoice.agreementId);
      const entry = state.agreements[key];
      const last = entry?.last;
      const hashlock = invoice.hashlock.toLowerCase() as Hex;
      if (!entry || !last || !sameHex(last.hashlock, refused) || last.agreement.total !== invoice.agreementTotal) {
        throw new InvoiceRejectedError(
          'NOT_LAST',
          invoice,
          `Not the last payment: agreement ${invoice.agreementId} was last paid with another hashlock or total`,
          'Only the last promise of an agreement can be signed again for another hashlock.',
        );
      }
      if (this.#hashlocks.has(hashlock) || entry.hashlocks.includes(hashlock)) {
        throw new InvoiceRejectedError(
          'REUSED_HASHLOCK',
          invoice,
          `Reused hashlock: ${hashlock} was already paid`,
          'Every invoice must carry a fresh hashlock keccak256(R) for a new random R; the provider should invoice again with one.',
        );
      }
      const promise = await signConsumerPromise(this.#account, {
        hub: this.hub,
        chainId: this.chainId,
        consumer: this.consumer,
        total: last.total,
        hashlock,
        agreement: last.agreement,
      });
      this.#checkSigner(promise);
      const next: LedgerState = {
        total: state.total,
        agreements: {
          ...state.agreements,
          [key]: { ...entry, hashlocks: [...entry.hashlocks, hashlock].slice(-this.#memory), last: promise },
        },
      };
      if (this.#version1) await this.#upgrade(state);
      await this.#writeEntry(key, next.agreements[key]!);
      this.#state = next;
      this.#hashlocks.add(hashlock);
      return { promise, increment: 0n, repeated: false };
    });
  }

  /**
   * Drops an agreement's entry (its paid total and hashlocks) from the stored document, once the
   * session is over and no invoice of it will be paid again. The consumer's total is kept.
   *
   * @example
   * await ledger.forget(provider, agreementId);
   */
  forget(provider: Address, agreementId: Hex): Promise<void> {
    return this.#mutex.run(async () => {
      const state = await this.#load();
      const key = agreementKey(provider, agreementId);
      if (!state.agreements[key]) return;
      const { [key]: _, ...agreements } = state.agreements;
      const next = { total: state.total, agreements };
      // The index keeps the total (which the entry's last promise may be the only one to carry) before
      // the entry goes.
      if (this.#version1) await this.#upgrade(state);
      await this.#writeIndex(next);
      await this.#store.delete(this.#entryKey(key));
      this.#state = next;
      this.#sessions.delete(key);
    });
  }

  /**
   * Registers a session for an agreement; a second live session for the same agreement would pay it
   * twice over, so it is refused. Called by {@link ConsumerSession}.
   *
   * @example
   * const release = ledger.attach(provider, agreementId);
   */
  attach(provider: Address, agreementId: Hex): () => void {
    const key = agreementKey(provider, agreementId);
    if (this.#sessions.has(key)) {
      throw new InvalidOptionError(
        'agreementId',
        `a session for agreement ${agreementId} with ${provider} is already open on this ledger`,
        'Pay an agreement through one session at a time; close the other first.',
      );
    }
    this.#sessions.add(key);
    return () => this.#sessions.delete(key);
  }

  /**
   * Checks that `promise` was signed by the consumer: a wallet may sign with another account than the
   * one it was given for, and the hub would refuse every such promise. A signer whose signatures are its
   * address's by construction (`signsAsItsAddress`, a local key) is not checked again.
   */
  #checkSigner(promise: SignedConsumerPromise): void {
    if ((this.#account as Partial<DigestSigner>).signsAsItsAddress === true) return;
    const signer = recoverConsumerPromiseSigner(promise, this.#verifier);
    if (!signer || !sameHex(signer, this.consumer)) throw new InvalidSignatureError(this.consumer, signer);
  }

  #checkScope(invoice: Invoice): void {
    if (!sameHex(invoice.hub, this.hub)) {
      throw new InvoiceRejectedError(
        'WRONG_HUB',
        invoice,
        `Wrong hub: the invoice is for hub ${invoice.hub}, this consumer pays through ${this.hub}`,
        'The provider should invoice at the hub the consumer has its channel at.',
      );
    }
    if (invoice.chainId !== this.chainId) {
      throw new InvoiceRejectedError(
        'WRONG_CHAIN',
        invoice,
        `Wrong chain: the invoice is for chain ${invoice.chainId}, this consumer pays on chain ${this.chainId}`,
        'The provider should invoice on the chain of the consumer’s hub.',
      );
    }
  }

  async #load(): Promise<LedgerState> {
    if (this.#state) return this.#state;
    const stored = await readState(this.#store, this.key, documentSchema);
    if (
      stored &&
      (stored.hub.toLowerCase() !== this.hub.toLowerCase() ||
        stored.chainId !== this.chainId ||
        stored.consumer.toLowerCase() !== this.consumer.toLowerCase())
    ) {
      throw new StoredStateError(this.key, 'it belongs to another hub, chain or consumer');
    }
    const state: LedgerState = { total: stored?.total ?? 0n, agreements: {} };
    if (stored?.version === 1) {
      state.agreements = stored.agreements as Record<string, AgreementEntry>;
      this.#version1 = true;
    } else if (stored) {
      for (const key of stored.agreements) {
        // Listed and never written: a crash between the two writes of a new agreement's first payment,
        // whose promise never left.
        const entry = await readState(this.#store, this.#entryKey(key), entrySchema);
        if (!entry) continue;
        state.agreements[key] = entry as AgreementEntry;
        // The consumer's total is the highest any promise carried: the entries' last ones are newer than
        // the index.
        if (entry.last && entry.last.total > state.total) state.total = entry.last.total;
      }
    }
    for (const entry of Object.values(state.agreements))
      for (const hashlock of entry.hashlocks) this.#hashlocks.add(hashlock);
    this.#state = state;
    return state;
  }

  /**
   * Where an agreement's entry is stored: the first 16 bytes of the keccak256 of its key, in hex, so
   * that the store key stays short (a file name, for a FileStore).
   */
  #entryKey(agreement: string): string {
    const hash = bytesToHex(keccak256Bytes(new TextEncoder().encode(agreement))).slice(2, 34);
    return `${this.key}/agreements/${hash}`;
  }

  /** Writes the index: the consumer's total and the agreements that have an entry. */
  async #writeIndex(state: LedgerState): Promise<void> {
    await this.#store.put(this.key, {
      version: 2,
      hub: this.hub,
      chainId: this.chainId,
      consumer: this.consumer,
      total: state.total.toString(),
      agreements: Object.keys(state.agreements),
    });
  }

  async #writeEntry(agreement: string, entry: AgreementEntry): Promise<void> {
    await this.#store.put(this.#entryKey(agreement), {
      paid: entry.paid.toString(),
      hashlocks: entry.hashlocks,
      last: entry.last ? encodeMessage(entry.last) : null,
    });
  }

  /** A version 1 document becomes an index: every entry first, so that a crash leaves the old document whole. */
  async #upgrade(state: LedgerState): Promise<void> {
    for (const [agreement, entry] of Object.entries(state.agreements)) await this.#writeEntry(agreement, entry);
    await this.#writeIndex(state);
    this.#version1 = false;
  }
}
