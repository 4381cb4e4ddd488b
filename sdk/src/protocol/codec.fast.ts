import { getAddress, isAddress } from 'viem';
import { ADDRESS_PATTERN, bytesPattern, MAX_UINT256, UINT256_PATTERN } from '../wire/primitives.js';
import type { SignedConsumerPromise, SignedHubPromise } from './types.js';

// The hot messages (a consumer promise, an exchange request, a hub promise: one of each per payment on
// the hub and at every seller) decoded without zod, which costs about 18 µs a promise against 4 here.
// The zod schemas of codec.ts stay the definition of the wire: a decoder here either returns exactly
// what its schema returns, or undefined for anything it does not accept at once, and decodeMessage then
// runs the schema, which accepts or names the field at fault. So a decoder here may be stricter than
// its schema, never looser (sdk/test/codec-fast.test.ts checks it against the schema on random inputs
// and on every field's edge values).

// The patterns are the schemas' own (../wire/primitives.ts); the signature's adds the schema's v check.
const BYTES32 = bytesPattern(32);
// 65 bytes, v = 27 or 28 (0x1b or 0x1c) in either case, as the schema reads it after lower-casing.
const SIGNATURE = /^0x[0-9a-fA-F]{128}1[bcBC]$/;
const SEALED_PREIMAGE = bytesPattern(33 + 12 + 32 + 16);

type Json = Record<string, unknown>;

/** A plain object (what JSON.parse makes) whose own keys are exactly `keys`, plus `optional` if present. */
function object(value: unknown, keys: ReadonlySet<string>, optional?: string): value is Json {
  if (typeof value !== 'object' || value === null) return false;
  const prototype = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) return false;
  const own = Object.keys(value);
  const extra = optional !== undefined && Object.hasOwn(value, optional) ? 1 : 0;
  if (own.length !== keys.size + extra) return false;
  for (const key of own) if (!keys.has(key) && key !== optional) return false;
  return true;
}

/**
 * The last {@link ADDRESSES_KEPT} address strings decoded, each with its checksummed form or null when it
 * is not an address: a hub or a seller sees the same few thousand consumers, providers and its own hub
 * again and again, and the checksum (a keccak) and viem's own caches cost more than the rest of a
 * promise's decoding.
 */
const addresses = new Map<string, `0x${string}` | null>();
const ADDRESSES_KEPT = 16_384;

function address(value: unknown): `0x${string}` | undefined {
  if (typeof value !== 'string') return undefined;
  let decoded = addresses.get(value);
  if (decoded === undefined) {
    decoded = ADDRESS_PATTERN.test(value) && isAddress(value, { strict: true }) ? getAddress(value) : null;
    if (addresses.size >= ADDRESSES_KEPT) addresses.delete(addresses.keys().next().value as string);
    addresses.set(value, decoded);
  }
  return decoded ?? undefined;
}
const hex = (value: unknown, pattern: RegExp) =>
  typeof value === 'string' && pattern.test(value) ? (value.toLowerCase() as `0x${string}`) : undefined;
const chainId = (value: unknown) =>
  typeof value === 'number' && Number.isSafeInteger(value) && value > 0 ? value : undefined;
function uint256(value: unknown): bigint | undefined {
  if (typeof value !== 'string' || !UINT256_PATTERN.test(value)) return undefined;
  const n = BigInt(value);
  return n <= MAX_UINT256 ? n : undefined;
}

const AGREEMENT_KEYS = new Set(['provider', 'id', 'total']);
const CONSUMER_PROMISE_KEYS = new Set(['hub', 'chainId', 'consumer', 'total', 'hashlock', 'agreement', 'signature']);
const HUB_PROMISE_KEYS = new Set(['hub', 'chainId', 'provider', 'total', 'hashlock', 'signature']);
const EXCHANGE_REQUEST_KEYS = new Set(['promise', 'encryptedPreimage']);

function consumerPromise(json: unknown): SignedConsumerPromise | undefined {
  if (!object(json, CONSUMER_PROMISE_KEYS) || !object(json.agreement, AGREEMENT_KEYS)) return undefined;
  const { agreement } = json;
  const decoded = {
    hub: address(json.hub),
    chainId: chainId(json.chainId),
    consumer: address(json.consumer),
    total: uint256(json.total),
    hashlock: hex(json.hashlock, BYTES32),
    agreement: {
      provider: address(agreement.provider),
      id: hex(agreement.id, BYTES32),
      total: uint256(agreement.total),
    },
    signature: hex(json.signature, SIGNATURE),
  };
  const { hub, chainId: chain, consumer, total, hashlock, signature } = decoded;
  const { provider, id, total: agreementTotal } = decoded.agreement;
  if (!hub || !chain || !consumer || total === undefined || !hashlock || !signature) return undefined;
  if (!provider || !id || agreementTotal === undefined) return undefined;
  return decoded as SignedConsumerPromise;
}

function hubPromise(json: unknown): SignedHubPromise | undefined {
  if (!object(json, HUB_PROMISE_KEYS)) return undefined;
  const decoded = {
    hub: address(json.hub),
    chainId: chainId(json.chainId),
    provider: address(json.provider),
    total: uint256(json.total),
    hashlock: hex(json.hashlock, BYTES32),
    signature: hex(json.signature, SIGNATURE),
  };
  const { hub, chainId: chain, provider, total, hashlock, signature } = decoded;
  if (!hub || !chain || !provider || total === undefined || !hashlock || !signature) return undefined;
  return decoded as SignedHubPromise;
}

function exchangeRequest(json: unknown) {
  if (!object(json, EXCHANGE_REQUEST_KEYS, 'previousPreimage')) return undefined;
  const promise = consumerPromise(json.promise);
  const encryptedPreimage = hex(json.encryptedPreimage, SEALED_PREIMAGE);
  if (!promise || !encryptedPreimage) return undefined;
  if (!Object.hasOwn(json, 'previousPreimage')) return { promise, encryptedPreimage };
  const previousPreimage = hex(json.previousPreimage, BYTES32);
  return previousPreimage ? { promise, previousPreimage, encryptedPreimage } : undefined;
}

/** By message name: the decoded message, or undefined to let the message's zod schema decide. */
export const fastDecoders = { consumerPromise, hubPromise, exchangeRequest } as const;
