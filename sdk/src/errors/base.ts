/** Parameters common to every SDK error. */
export interface ChitErrorParameters {
  /** What went wrong, in one line. */
  shortMessage?: string;
  /** More context: the value, the limit, what to do next. */
  details?: string;
  /** The error this one wraps. */
  cause?: unknown;
}

/**
 * The base of every error the SDK throws. `shortMessage` says what went wrong, `details` gives the
 * context, `cause` the underlying error; `code` is stable and matches the hub's error codes where one
 * exists.
 *
 * @example
 * try {
 *   decodeConsumerPromise(json);
 * } catch (error) {
 *   if (error instanceof ChitError) console.error(error.code, error.shortMessage);
 * }
 */
export class ChitError extends Error {
  override name = 'ChitError';
  /** A stable, machine-readable code such as `MALFORMED` or `INVALID_SIGNATURE`. */
  readonly code: string;
  readonly shortMessage: string;
  readonly details: string | undefined;

  constructor(code: string, shortMessage: string, parameters: Omit<ChitErrorParameters, 'shortMessage'> = {}) {
    super(parameters.details ? `${shortMessage}\n\nDetails: ${parameters.details}` : shortMessage, {
      cause: parameters.cause,
    });
    this.code = code;
    this.shortMessage = shortMessage;
    this.details = parameters.details;
  }
}
