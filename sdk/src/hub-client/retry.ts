import { InvalidOptionError } from './errors.js';

/** How a {@link HubClient} retries retryable failures (429, 500, 503, network errors, timeouts). */
export interface HubRetryOptions {
  /** Attempts in all, the first included. `1` disables retries. Default 4. */
  attempts?: number;
  /** The cap of the first backoff; it doubles with each attempt. Default 250 ms. */
  baseDelayMs?: number;
  /** The largest backoff between two attempts. Default 8 s. */
  maxDelayMs?: number;
  /** Give up at once when the hub's `Retry-After` asks for longer than this. Default 60 s. */
  maxRetryAfterMs?: number;
}

/** {@link HubRetryOptions} with every default filled in. */
export type ResolvedRetryOptions = Required<HubRetryOptions>;

/**
 * Fills in the defaults of {@link HubRetryOptions} and checks the values.
 *
 * @example
 * resolveRetryOptions({ attempts: 2 }); // { attempts: 2, baseDelayMs: 250, maxDelayMs: 8000, maxRetryAfterMs: 60000 }
 */
export function resolveRetryOptions(options: HubRetryOptions = {}): ResolvedRetryOptions {
  const resolved = {
    attempts: options.attempts ?? 4,
    baseDelayMs: options.baseDelayMs ?? 250,
    maxDelayMs: options.maxDelayMs ?? 8_000,
    maxRetryAfterMs: options.maxRetryAfterMs ?? 60_000,
  };
  if (!Number.isInteger(resolved.attempts) || resolved.attempts < 1) {
    throw new InvalidOptionError('retry.attempts', `expected an integer >= 1, got ${resolved.attempts}`);
  }
  for (const key of ['baseDelayMs', 'maxDelayMs', 'maxRetryAfterMs'] as const) {
    if (!(resolved[key] >= 0)) throw new InvalidOptionError(`retry.${key}`, `expected >= 0, got ${resolved[key]}`);
  }
  return resolved;
}

/**
 * The wait before attempt `attempt + 1` after `attempt` failed: exponential backoff with full jitter,
 * a random time in `[0, min(maxDelayMs, baseDelayMs * 2^(attempt - 1))]`, so that many clients
 * retrying after the same outage spread out.
 *
 * @example
 * const wait = backoffDelay(2, resolveRetryOptions()); // somewhere in [0, 500] ms
 */
export function backoffDelay(
  attempt: number,
  options: ResolvedRetryOptions,
  random: () => number = Math.random,
): number {
  const cap = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** (attempt - 1));
  return Math.floor(random() * cap);
}

/**
 * Parses an HTTP `Retry-After` value (delay in seconds, or an HTTP date) into milliseconds from `now`;
 * `undefined` when absent or unreadable.
 *
 * @example
 * parseRetryAfter('2'); // 2000
 */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | undefined {
  if (value == null) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/**
 * Waits `ms` milliseconds, or rejects with the signal's reason when it aborts first.
 *
 * @example
 * await sleep(100, controller.signal);
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
