import { decodeMessage, MalformedMessageError, type MessageName, wireIssuePath } from '@chit/sdk';
import { type Address, getAddress, isAddress } from 'viem';
import type { z } from 'zod';
import { HubError } from './hub-error';

/** Decodes the wire message `name` with the SDK's strict codec, or throws MALFORMED naming the first offending field. */
export function decodeWire<N extends MessageName>(name: N, input: unknown) {
  try {
    return decodeMessage(name, input);
  } catch (error) {
    if (error instanceof MalformedMessageError) {
      throw new HubError('MALFORMED', error.shortMessage, { path: error.path });
    }
    throw error;
  }
}

/**
 * Decodes an address in a path or a query (`path` names it) as the codec decodes one in a body: `0x` and
 * 40 hex digits, in lower case or with a valid EIP-55 checksum. Returns the EIP-55 form, the one the hub
 * answers; else throws MALFORMED, without repeating the input.
 */
export function decodeAddress(value: unknown, path: string): Address {
  if (typeof value !== 'string' || !/^0x[0-9a-fA-F]{40}$/.test(value)) {
    throw new HubError('MALFORMED', `${path}: expected a 20-byte 0x-hex address`, { path });
  }
  if (!isAddress(value, { strict: true })) throw new HubError('MALFORMED', `${path}: bad EIP-55 checksum`, { path });
  return getAddress(value);
}

/** Decodes `input` with `schema` (one of the SDK's hubEndpoints), or throws MALFORMED naming the first offending field. */
export function decodeBody<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const path = wireIssuePath(issue);
  throw new HubError('MALFORMED', path ? `${path}: ${issue.message}` : issue.message, { path });
}
