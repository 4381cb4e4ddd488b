import type { Address, Hex } from 'viem';

/** Where a message is valid: the hub contract and the chain. Every signed message names both. */
export interface HubScope {
  /** The hub contract (the EIP-712 verifying contract). */
  hub: Address;
  chainId: number;
}

/** The agreement an invoice bills and a consumer promise pays for. */
export interface Agreement {
  /** The provider identity that serves and is paid. */
  provider: Address;
  /** The session's id, chosen by the provider. */
  id: Hex;
  /** Cumulative amount due for this session so far. */
  total: bigint;
}

/** Provider → consumer: what is due so far in the session, locked to a fresh hashlock. */
export interface Invoice extends HubScope {
  provider: Address;
  agreementId: Hex;
  /** Cumulative amount due for this agreement. */
  agreementTotal: bigint;
  /** keccak256(R) for a fresh R the provider keeps secret until the hub has paid it. */
  hashlock: Hex;
  /** The hub fee in basis points the provider expects to pay on this amount (informational). */
  fee: number;
}

/** The consumer's EIP-712 promise to the hub, bound to the agreement it pays. */
export interface ConsumerPromise extends HubScope {
  consumer: Address;
  /** The consumer's cumulative total promised to this hub across all its providers. */
  total: bigint;
  hashlock: Hex;
  agreement: Agreement;
}

/** A consumer promise with the consumer's 65-byte signature. */
export interface SignedConsumerPromise extends ConsumerPromise {
  signature: Hex;
}

/** The hub's EIP-712 promise to a provider, signed by the operator. */
export interface HubPromise extends HubScope {
  provider: Address;
  /** Cumulative total the hub owes the provider, before the hub fee. */
  total: bigint;
  hashlock: Hex;
}

/** A hub promise with the operator's 65-byte signature. */
export interface SignedHubPromise extends HubPromise {
  signature: Hex;
}

/** Provider → hub: swap a consumer promise for a hub promise. */
export interface ExchangeRequest {
  promise: SignedConsumerPromise;
  /** R of the provider's previous exchange at this hub, if not revealed separately. */
  previousPreimage?: Hex;
  /** R of this exchange encrypted to the hub's public key; the hub decrypts it only if the provider
   * never reveals R, or for the provider's own recovery. */
  encryptedPreimage: Hex;
}

/** Hub → provider: the new hub promise. */
export interface ExchangeResponse {
  hubPromise: SignedHubPromise;
}

/** Provider → hub: the R of a hub promise it holds. */
export interface Reveal extends HubScope {
  provider: Address;
  preimage: Hex;
}

/** Provider → hub: give back my latest promise and its R after I lost my store. Signed (EIP-712). */
export interface RecoveryRequest extends HubScope {
  provider: Address;
  /** Unix seconds; the hub accepts requests a few minutes old at most. */
  issuedAt: bigint;
}

/** A recovery request with the provider's signature. */
export interface SignedRecoveryRequest extends RecoveryRequest {
  signature: Hex;
}

/**
 * Consumer → hub: co-sign an instant exit of `amount` from my channel. Signed (EIP-712), so that no one
 * else can make the hub reserve the consumer's balance.
 *
 * @example
 * const request: InstantExitRequest = { hub, chainId, consumer, amount: 10n ** 18n, issuedAt: BigInt(Math.floor(Date.now() / 1000)) };
 */
export interface InstantExitRequest extends HubScope {
  consumer: Address;
  amount: bigint;
  /** Unix seconds; the hub accepts requests a few minutes old at most. */
  issuedAt: bigint;
}

/**
 * An instant-exit request with the consumer's signature.
 *
 * @example
 * const request: SignedInstantExitRequest = await signInstantExitRequest(consumerAccount, unsigned);
 */
export interface SignedInstantExitRequest extends InstantExitRequest {
  signature: Hex;
}

/**
 * The body of `POST /v1/exits/instant`: a signed instant-exit request without its scope (the hub
 * verifies it in its own domain).
 *
 * @example
 * const { hub, chainId, ...body }: SignedInstantExitRequest = signed; // body: InstantExitRequestBody
 */
export type InstantExitRequestBody = Omit<SignedInstantExitRequest, keyof HubScope>;

/** Hub → provider: the latest promise, reissued, and its R. */
export interface RecoveryResponse {
  hubPromise: SignedHubPromise | null;
  preimage: Hex | null;
}
