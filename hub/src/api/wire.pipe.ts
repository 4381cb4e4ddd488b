import type { decodeMessage, MessageName } from '@chit/sdk';
import type { PipeTransform } from '@nestjs/common';
import type { z } from 'zod';
import { decodeBody, decodeWire } from '../errors/decode-wire';

/** The typed form of the wire message `N`, as the SDK's codec decodes it. */
export type WireMessage<N extends MessageName> = ReturnType<typeof decodeMessage<N>>;

/**
 * Decodes a body at the controller's edge with the SDK's strict codec (`@Body(wire('reveal'))`), so the
 * service receives typed values; a body of another shape is answered MALFORMED naming its first
 * offending field, and reaches no service.
 */
export function wire<N extends MessageName>(name: N): PipeTransform<unknown, WireMessage<N>> {
  return { transform: (value: unknown) => decodeWire(name, value) };
}

/**
 * Decodes a body or a query at the controller's edge with one of the wire contract's schemas
 * (`@Query(decoded(historyQuery))`); MALFORMED naming the first offending field otherwise.
 */
export function decoded<S extends z.ZodType>(schema: S): PipeTransform<unknown, z.output<S>> {
  return { transform: (value: unknown) => decodeBody(schema, value) };
}
