import type { Address, Hex } from 'viem';
import { z } from 'zod';
import { MalformedMessageError } from '../errors/protocol.js';
import { address, basisPoints, bytes32, chainId, sealedPreimage, signature, uint256 } from '../wire/primitives.js';
import { fastDecoders } from './codec.fast.js';
import type {
  ExchangeRequest,
  ExchangeResponse,
  InstantExitRequestBody,
  Invoice,
  RecoveryResponse,
  Reveal,
  SignedConsumerPromise,
  SignedHubPromise,
  SignedRecoveryRequest,
} from './types.js';

// The wire format (see ../wire/primitives.ts for the primitives). Decoding is strict: unknown fields,
// wrong lengths, negative or oversized numbers are rejected with a MalformedMessageError naming the field.

const scope = { hub: address, chainId };

const agreement = z.strictObject({ provider: address, id: bytes32, total: uint256 });

const invoice = z.strictObject({
  ...scope,
  provider: address,
  agreementId: bytes32,
  agreementTotal: uint256,
  hashlock: bytes32,
  fee: basisPoints,
});

const consumerPromise = z.strictObject({
  ...scope,
  consumer: address,
  total: uint256,
  hashlock: bytes32,
  agreement,
  signature,
});

const hubPromise = z.strictObject({ ...scope, provider: address, total: uint256, hashlock: bytes32, signature });

const exchangeRequest = z.strictObject({
  promise: consumerPromise,
  previousPreimage: bytes32.optional(),
  encryptedPreimage: sealedPreimage,
});

const exchangeResponse = z.strictObject({ hubPromise });

const reveal = z.strictObject({ ...scope, provider: address, preimage: bytes32 });

const recoveryRequest = z.strictObject({ ...scope, provider: address, issuedAt: uint256, signature });

// The hub checks the signature in its own domain: the body does not repeat hub and chainId.
const instantExitRequest = z.strictObject({ consumer: address, amount: uint256, issuedAt: uint256, signature });

const recoveryResponse = z.strictObject({ hubPromise: hubPromise.nullable(), preimage: bytes32.nullable() });

/**
 * Every wire message's zod schema, keyed by message name.
 *
 * @example
 * const ok = wireSchemas.invoice.safeParse(json).success;
 */
export const wireSchemas = {
  invoice,
  consumerPromise,
  hubPromise,
  exchangeRequest,
  exchangeResponse,
  reveal,
  recoveryRequest,
  recoveryResponse,
  instantExitRequest,
} as const;

/** The name of a wire message. */
export type MessageName = keyof typeof wireSchemas;

interface Messages {
  invoice: Invoice;
  consumerPromise: SignedConsumerPromise;
  hubPromise: SignedHubPromise;
  exchangeRequest: ExchangeRequest;
  exchangeResponse: ExchangeResponse;
  reveal: Reveal;
  recoveryRequest: SignedRecoveryRequest;
  recoveryResponse: RecoveryResponse;
  instantExitRequest: InstantExitRequestBody;
}

/** The messages that have a decoder without zod (./codec.fast.ts). */
const withoutZod: Partial<Record<MessageName, (json: unknown) => unknown>> = fastDecoders;

/**
 * Decodes a wire message (already parsed JSON) into its typed form, strictly.
 *
 * @throws {MalformedMessageError} naming the first offending field.
 * @example
 * const promise = decodeMessage('consumerPromise', await request.json());
 */
export function decodeMessage<N extends MessageName>(name: N, json: unknown): Messages[N] {
  // The hot messages first without zod: what that accepts, the schema returns identically.
  const fast = withoutZod[name]?.(json);
  if (fast !== undefined) return fast as Messages[N];
  const result = wireSchemas[name].safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new MalformedMessageError(name, wireIssuePath(issue), issue.message, result.error);
  }
  return result.data as unknown as Messages[N];
}

/**
 * The dotted path of the field a decoding issue is about. For an unknown field that is the field
 * itself (zod puts it in `keys` and gives its parent's path): the first one when there are several.
 *
 * @example
 * const result = wireSchemas.reveal.safeParse({ ...reveal, extra: 1 });
 * if (!result.success) wireIssuePath(result.error.issues[0]!); // 'extra'
 */
export function wireIssuePath(issue: z.core.$ZodIssue): string {
  const path = issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0]!] : issue.path;
  return path.map(String).join('.');
}

type Wire<T> = T extends bigint
  ? string
  : T extends Address | Hex | string | number | boolean | null | undefined
    ? T
    : { [K in keyof T]: Wire<T[K]> };

/**
 * Encodes a typed message for the wire: bigints become decimal strings; everything else is kept.
 *
 * @example
 * await fetch(url, { method: 'POST', body: JSON.stringify(encodeMessage(promise)) });
 */
export function encodeMessage<T>(message: T): Wire<T> {
  return toWire(message) as Wire<T>;
}

function toWire(value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString(10);
  if (Array.isArray(value)) return value.map(toWire);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, inner] of Object.entries(value)) if (inner !== undefined) out[key] = toWire(inner);
    return out;
  }
  return value;
}
