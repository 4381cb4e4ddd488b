import type { Hex } from 'viem';
import { z } from 'zod';
import { StoredStateError } from './errors.js';
import type { Json } from './store.js';

// Schemas of the state the sessions keep in a Store. Amounts are decimal strings; a stored document
// is read strictly so that a damaged one stops the session instead of signing from a wrong total.

/**
 * A stored amount: a decimal string, read as bigint.
 *
 * @example
 * storedAmount.parse('12'); // 12n
 */
export const storedAmount = z
  .string()
  .regex(/^(0|[1-9][0-9]{0,77})$/, 'expected a decimal amount')
  .transform((value) => BigInt(value));

/**
 * A stored 32-byte value (hashlock, preimage, agreement id), lower-case hex.
 *
 * @example
 * storedBytes32.parse(`0x${'00'.repeat(32)}`);
 */
export const storedBytes32 = z
  .string()
  .regex(/^0x[0-9a-f]{64}$/, 'expected 32 lower-case bytes')
  .transform((value) => value as Hex);

/**
 * Reads a stored document with `schema`; `undefined` when nothing is stored.
 *
 * @throws {StoredStateError} when the document does not match.
 * @example
 * const state = readState(store, key, schema);
 */
export async function readState<S extends z.ZodType>(
  store: { get(key: string): Promise<Json | undefined> },
  key: string,
  schema: S,
): Promise<z.output<S> | undefined> {
  const json = await store.get(key);
  if (json === undefined) return undefined;
  const result = schema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new StoredStateError(key, `${issue.path.join('.') || '(root)'}: ${issue.message}`, result.error);
  }
  return result.data;
}
