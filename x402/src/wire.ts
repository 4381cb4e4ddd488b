import { keccak256Bytes } from '@chit/sdk';
import { type Address, bytesToHex, concat, getAddress, type Hex, hexToBytes, isAddress } from 'viem';

// The `chit` scheme's wire rules, shared by the buyer and the seller (docs/x402.md has the contract).

/** The x402 scheme name. */
export const CHIT_SCHEME = 'chit';

/** Bytes in a MiB (2^20), the unit of `extra.pricePerMiB`. */
export const MIB = 1n << 20n;

/** The `extra` keys the seller mints for each 402 (its invoice); listed in the server's `dynamicExtraFields`. */
export const DYNAMIC_EXTRA_FIELDS = ['nonce', 'hashlock', 'expiresAt'] as const;

/** The static `extra` of a chit payment requirement: the same on the 402 and on the paid retry. */
export interface ChitStaticExtra {
  /** The Hub contract (EIP-55). */
  hub: Address;
  /** The hub service URL (informational). */
  hubUrl: string;
  /** Base units per MiB of response body, decimal string; "0" when none. */
  pricePerMiB: string;
  /** 0x + 64 hex: the seller's salt of the agreement ids of this price. */
  agreementSalt: Hex;
}

/** The seller's invoice, minted for each 402. */
export interface ChitInvoiceExtra {
  /** 0x + 64 hex. */
  nonce: Hex;
  /** keccak256(R) for the seller's R of this nonce. */
  hashlock: Hex;
  /** Unix seconds after which the seller refuses the invoice. */
  expiresAt: number;
}

/** `PaymentPayload.payload` of the chit scheme. */
export interface ChitPayload {
  /** The signed consumer promise, as `encodeMessage` gives it. */
  promise: unknown;
  /** The buyer's own count before this request (informational): paid requests, this one included, and bytes. */
  usage: { requests: string; bytes: string };
}

/**
 * The agreement total a payment signs for the n-th paid request of an agreement (n counts this one), B
 * being the body bytes of all responses served on the agreement before it:
 * `n × amount + ceil(B × pricePerMiB / 2^20)`.
 *
 * @example
 * due(3n, 1_500_000n, 100n, 2_000n); // 3 × 100 + ceil(1_500_000 × 2_000 / 1_048_576) = 3162n
 */
export function due(requests: bigint, bytes: bigint, amount: bigint, pricePerMiB: bigint): bigint {
  return requests * amount + (bytes * pricePerMiB + MIB - 1n) / MIB;
}

/**
 * The agreement id of a consumer at a seller's price: keccak256(agreementSalt ‖ consumer), one agreement
 * per consumer per seller price.
 *
 * @example
 * const id = agreementIdOf(requirements.extra.agreementSalt, ledger.consumer);
 */
export function agreementIdOf(agreementSalt: Hex, consumer: Address): Hex {
  // The SDK's keccak: native where `enableNativeHashing()` was called (a seller computes this twice per payment).
  return bytesToHex(keccak256Bytes(hexToBytes(concat([agreementSalt, consumer]))));
}

/**
 * The CAIP-2 network of a hub's chain.
 *
 * @example
 * networkOf(31337); // 'eip155:31337'
 */
export function networkOf(chainId: number): `eip155:${number}` {
  return `eip155:${chainId}`;
}

const BYTES32 = /^0x[0-9a-fA-F]{64}$/;
const AMOUNT = /^(0|[1-9][0-9]{0,77})$/;

/** A decimal string of base units as bigint, or undefined. */
export function parseAmount(value: unknown): bigint | undefined {
  return typeof value === 'string' && AMOUNT.test(value) ? BigInt(value) : undefined;
}

/** A 0x + 64 hex value, lower-cased, or undefined. */
export function parseBytes32(value: unknown): Hex | undefined {
  return typeof value === 'string' && BYTES32.test(value) ? (value.toLowerCase() as Hex) : undefined;
}

/** An address (any case) as EIP-55, or undefined. */
export function parseAddress(value: unknown): Address | undefined {
  return typeof value === 'string' && isAddress(value, { strict: false }) ? getAddress(value) : undefined;
}

/** The static and invoice fields of a requirement's `extra`, or the name of the first bad one. */
export function readExtra(
  extra: Readonly<Record<string, unknown>> | undefined,
):
  | { ok: true; value: ChitStaticExtra & ChitInvoiceExtra & { pricePerMiBValue: bigint } }
  | { ok: false; field: string } {
  const e = extra ?? {};
  const hub = parseAddress(e.hub);
  if (!hub) return { ok: false, field: 'extra.hub' };
  const pricePerMiB = parseAmount(e.pricePerMiB);
  if (pricePerMiB === undefined) return { ok: false, field: 'extra.pricePerMiB' };
  const agreementSalt = parseBytes32(e.agreementSalt);
  if (!agreementSalt) return { ok: false, field: 'extra.agreementSalt' };
  const nonce = parseBytes32(e.nonce);
  if (!nonce) return { ok: false, field: 'extra.nonce' };
  const hashlock = parseBytes32(e.hashlock);
  if (!hashlock) return { ok: false, field: 'extra.hashlock' };
  const expiresAt = e.expiresAt;
  if (typeof expiresAt !== 'number' || !Number.isSafeInteger(expiresAt) || expiresAt < 0) {
    return { ok: false, field: 'extra.expiresAt' };
  }
  return {
    ok: true,
    value: {
      hub,
      hubUrl: typeof e.hubUrl === 'string' ? e.hubUrl : '',
      pricePerMiB: e.pricePerMiB as string,
      pricePerMiBValue: pricePerMiB,
      agreementSalt,
      nonce,
      hashlock,
      expiresAt,
    },
  };
}

/**
 * An invoice (`{ nonce, hashlock, expiresAt }`, as a 402 mints it into `extra` and a PAYMENT-RESPONSE
 * carries the next one in `extra.nextInvoice`), or undefined when malformed.
 */
export function readInvoice(value: unknown): ChitInvoiceExtra | undefined {
  const e = (value ?? {}) as Record<string, unknown>;
  const nonce = parseBytes32(e.nonce);
  const hashlock = parseBytes32(e.hashlock);
  const expiresAt = e.expiresAt;
  if (!nonce || !hashlock || typeof expiresAt !== 'number' || !Number.isSafeInteger(expiresAt) || expiresAt < 0) {
    return undefined;
  }
  return { nonce, hashlock, expiresAt };
}

/** Unix seconds now. */
export const nowSeconds = (clock: () => number = Date.now) => Math.floor(clock() / 1000);

type NodeBuffer = { from(data: string, encoding: string): { toString(encoding: string): string } };
/** Node's Buffer where there is one (a browser has none); looked up so that the buyer's bundle needs no polyfill. */
const nodeBuffer = (globalThis as { Buffer?: NodeBuffer }).Buffer;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * An x402 header's value (PAYMENT-SIGNATURE, PAYMENT-RESPONSE): base64 of the JSON, as `@x402/core`'s
 * encoders write it. In Node it is Buffer's base64, much cheaper than the byte-by-byte
 * string `@x402/core` builds for `btoa` (4.6 against 64 µs for a payment); elsewhere `fallback` (x402's own encoder).
 */
export function encodeHeader(value: unknown, fallback: (value: never) => string): string {
  return nodeBuffer ? nodeBuffer.from(JSON.stringify(value), 'utf8').toString('base64') : fallback(value as never);
}

/** The JSON of an x402 header's value, as `@x402/core`'s decoders read it (it throws on a value that is not base64). */
export function decodeHeader<T>(value: string, fallback: (value: string) => T): T {
  if (!nodeBuffer) return fallback(value);
  if (!BASE64.test(value)) throw new Error('Invalid x402 header: not base64');
  return JSON.parse(nodeBuffer.from(value, 'base64').toString('utf8')) as T;
}
