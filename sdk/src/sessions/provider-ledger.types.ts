import type { Address, Hex } from 'viem';
import type { HubClient } from '../hub-client/hub-client.js';
import type { HubJob, HubServiceInfo, HubSettlement, HubSettlementQuote } from '../hub-client/schemas.js';
import type { TypedDataSigner } from '../protocol/sign.js';
import type { ExchangeRequest, SignedConsumerPromise, SignedHubPromise } from '../protocol/types.js';
import type { Verifier } from '../protocol/verifier.js';
import type { CreditedTotals } from './provider-ledger.credited.js';
import type { SettlementDecision, SettlementPolicy } from './settlement-policy.js';
import type { Store } from './store.js';

/** Options of a {@link ProviderLedger}. */
export interface ProviderLedgerOptions {
  /** The client of the hub the provider exchanges at. */
  hub: HubClient;
  /** The provider's identity key: a viem LocalAccount, or anything with its address that signs typed data. */
  account: TypedDataSigner & { address: Address };
  /** Where the ledger keeps its state and the sessions their preimages. Default: in memory. */
  store?: Store;
  /** The key of the ledger's document. Default `chit/provider/<chainId>/<hub>/<provider>`. */
  key?: string;
  /**
   * What `/v1/info` must say, checked when the ledger opens. Pin `operator` to the one the Hub
   * contract names (read it on-chain): hub promises are checked against the operator, and a hub
   * service could otherwise name any key.
   */
  expect?: { hub?: Address; chainId?: number; operator?: Address };
  /** Checks hub signatures. Default: the JavaScript verifier (`nativeVerifier()` of `@chit/sdk/node` is faster). */
  verifier?: Verifier;
  /**
   * Seals R to the hub's public key for each exchange. Default: `preimageSealer` in JavaScript (one
   * ephemeral key for many boxes); `nativePreimageSealer` of `@chit/sdk/node` does it in native code.
   */
  preimageSealer?: (hubPublicKey: Hex) => (preimage: Hex) => Hex;
  /** Milliseconds since the epoch; `Date.now` by default. Used for recovery requests and deadlines. */
  clock?: () => number;
  /**
   * On an empty store, ask the hub for the latest promise and its R (a signed recovery request) before
   * the first exchange, so that a provider that lost its store continues from the hub's total.
   * Default true.
   */
  recoverOnEmptyStore?: boolean;
  /**
   * How many agreements' credited totals the ledger's document holds as changed since its checkpoint
   * (`<key>/credited` in the store, every agreement's total) before it writes the checkpoint again.
   * Each save writes the document, so this bounds what a save writes however many agreements the
   * provider ever had; the checkpoint is written once per this many changes. Default 512.
   */
  creditedJournal?: number;
  /** When to settle; {@link ProviderLedger.maybeSettle} needs one. */
  settlementPolicy?: SettlementPolicy;
  /** {@link ProviderLedger.maybeSettle} does nothing when called again within this time. Default 60 s. */
  settlementCheckMs?: number;
}

/** What a recovery gave back. */
export interface Recovered {
  hubPromise: SignedHubPromise;
  preimage: Hex | null;
}

/** What {@link ProviderLedger.maybeSettle} did. */
export interface SettlementAttempt {
  /** The policy's decision, when a quote was asked for. */
  decision?: SettlementDecision;
  quote?: HubSettlementQuote;
  /** The settlement requested, when the decision was to settle. */
  job?: HubJob;
  /** A settlement requested before and still running: nothing else was done. */
  pending?: HubSettlement;
  /** True when the last check was less than `settlementCheckMs` ago: nothing was done. */
  throttled?: true;
}

export interface Inflight {
  request: ExchangeRequest;
  preimage: Hex;
  expectedTotal: bigint;
}

export interface QueuedExchange {
  promise: SignedConsumerPromise;
  preimage: Hex;
  resolve(hubPromise: SignedHubPromise): void;
  reject(error: unknown): void;
}

export interface ProviderState {
  latest: SignedHubPromise | null;
  latestPreimage: Hex | null;
  /**
   * An R the hub may not know, left by a version of this ledger that revealed R after each exchange;
   * revealed (or sent as `previousPreimage`) before the next exchange. Exchanges now carry R in their
   * box, which the hub opens before it signs, so nothing new is ever left here.
   */
  unrevealed: Hex | null;
  /** The highest agreement total the hub credited, by agreement id: the checkpoint's and those since. */
  credited: CreditedTotals;
  /** An exchange sent whose outcome is not known yet: it is sent again, identically, before any other. */
  inflight: Inflight | null;
  /** The same for exchanges sent together (`POST /v1/exchanges`): sent again, identically, before any other. */
  inflightBatch: Inflight[];
  /** What the hub settled, as last learned from a quote. */
  settledEstimate: bigint;
  settlementId: string | null;
}

/**
 * What the parts of a {@link ProviderLedger} kept in other modules (exchanges, batches, recovery,
 * settlement) work with, inside the ledger's lock: its identity, its state, and its own steps.
 */
export interface LedgerInternals {
  readonly hub: HubClient;
  readonly provider: Address;
  readonly account: TypedDataSigner;
  readonly clock: () => number;
  /** The options' `settlementPolicy`. */
  settlementPolicy(): SettlementPolicy | undefined;
  /** The hub's `/v1/info` (`ledger.info`). */
  info(): HubServiceInfo;
  /** The state, once open. */
  state(): ProviderState;
  open(): Promise<ProviderState>;
  save(state: ProviderState): Promise<void>;
  seal(preimage: Hex): Hex;
  reveal(state: ProviderState): Promise<ProviderState>;
  checkHubPromise(hubPromise: SignedHubPromise, hashlock: Hex, expectedTotal: bigint | undefined): void;
}
