import { ChitError } from './base.js';

/**
 * A message that does not match the wire format: an unknown field, a wrong length, a negative or
 * oversized number. `path` names the offending field.
 *
 * @example
 * try {
 *   decodeInvoice({ agreementTotal: '-1' });
 * } catch (error) {
 *   if (error instanceof MalformedMessageError) console.error(error.path, error.shortMessage);
 * }
 */
export class MalformedMessageError extends ChitError {
  override name = 'MalformedMessageError';
  /** Dotted path of the first offending field, for example `agreement.total`. */
  readonly path: string;

  constructor(message: string, path: string, issue: string, cause?: unknown) {
    super('MALFORMED', `Malformed ${message}: ${path ? `${path}: ` : ''}${issue}`, { cause });
    this.path = path;
  }
}

/**
 * A signature that does not come from the expected signer, or is malformed or malleable (high s).
 *
 * @example
 * if (!verifyConsumerPromise(promise)) throw new InvalidSignatureError(promise.consumer, undefined);
 */
export class InvalidSignatureError extends ChitError {
  override name = 'InvalidSignatureError';
  readonly expected: string;
  readonly recovered: string | undefined;

  constructor(expected: string, recovered: string | undefined) {
    super('INVALID_SIGNATURE', `The signature is not from ${expected}`, {
      details: recovered ? `It recovers to ${recovered}.` : 'It is malformed or malleable (high s).',
    });
    this.expected = expected;
    this.recovered = recovered;
  }
}

/**
 * A preimage R that does not hash to the hashlock of the promise it should unlock.
 *
 * @example
 * try {
 *   toConsumerClaim(promise, preimage);
 * } catch (error) {
 *   if (error instanceof PreimageMismatchError) console.error(error.hashlock);
 * }
 */
export class PreimageMismatchError extends ChitError {
  override name = 'PreimageMismatchError';
  readonly hashlock: string;

  constructor(hashlock: string) {
    super('INVALID_PREIMAGE', `The preimage does not hash to the hashlock ${hashlock}`, {
      details: 'Use the R this promise was made for: keccak256(R) must equal its hashlock.',
    });
    this.hashlock = hashlock;
  }
}
