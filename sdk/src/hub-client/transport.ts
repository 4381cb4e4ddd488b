import { type Address, getAddress, isAddress } from 'viem';
import { MalformedMessageError } from '../errors/protocol.js';
import {
  codeForStatus,
  HubError,
  HubRequestAbortedError,
  HubTimeoutError,
  HubUnreachableError,
  InvalidOptionError,
  isRetryableHubError,
} from './errors.js';
import {
  backoffDelay,
  type HubRetryOptions,
  parseRetryAfter,
  type ResolvedRetryOptions,
  resolveRetryOptions,
  sleep,
} from './retry.js';

// How a HubClient talks to a hub: one request, its timeout, its retries, its error answer as a typed
// HubError. The endpoints (hub-client.ts, history-client.ts) say what to send and how to decode.

/** Options of a {@link HubClient}. */
export interface HubClientOptions {
  /** The hub's base URL, as the Registry lists it: `https://hub.example` (the client appends `/v1/...`). */
  url: string;
  /** The `fetch` to use; `globalThis.fetch` by default. Inject one for tests, proxies or metrics. */
  fetch?: typeof globalThis.fetch;
  /**
   * Sends the requests instead of `fetch`: in Node, `nodeHubHttp()` of `@chit/sdk/node` (node:http on
   * kept-alive connections), a fraction of the CPU of Node's `fetch` per request, which a provider
   * exchanging hundreds of times a second notices. Timeouts, retries and errors are the same.
   */
  http?: HubHttp;
  /** Per-attempt timeout, from sending the request to the end of the answer. Default 10 s. */
  timeoutMs?: number;
  /** Retries of retryable failures. */
  retry?: HubRetryOptions;
  /** Extra headers sent with every request (an API key, a user agent). */
  headers?: Record<string, string>;
  /** Source of randomness for the backoff jitter, in [0, 1). Default `Math.random`. */
  random?: () => number;
}

/** One HTTP request of a {@link HubClient}, as a {@link HubHttp} sends it. */
export interface HubHttpRequest {
  method: 'GET' | 'POST';
  /** The absolute URL. */
  url: string;
  headers: Record<string, string>;
  /** JSON text, when the request has a body. */
  body?: string;
  /** Aborted on the attempt's timeout or the caller's abort: the request must stop and reject then. */
  signal: AbortSignal;
}

/** What a {@link HubHttp} answers: the status, the whole body as text, and the headers. */
export interface HubHttpAnswer {
  status: number;
  text: string;
  headers: { get(name: string): string | null };
}

/** Sends one request and reads its whole answer; rejects when there is none (refused, reset, aborted). */
export type HubHttp = (request: HubHttpRequest) => Promise<HubHttpAnswer>;

/** Options of one request. */
export interface HubRequestOptions {
  /** Aborts the request (and its retries) with a {@link HubRequestAbortedError}. */
  signal?: AbortSignal;
  /** Overrides the client's per-attempt timeout. */
  timeoutMs?: number;
  /** `false` sends the request once, whatever happens. Default true. */
  retry?: boolean;
}

export type Decoder<T> = (json: unknown) => T;

/** One request to a hub, and how to decode its answer. */
export interface Call<T> {
  method: 'GET' | 'POST';
  path: string;
  body?: unknown;
  /** Headers of this request besides the client's (a session's Authorization). */
  headers?: Record<string, string>;
  /** Decode the answer's text as it is (CSV), not as JSON. */
  text?: boolean;
  decode: Decoder<T>;
}

type RawAnswer = HubHttpAnswer;

/**
 * Removes a trailing slash and checks the scheme, so that one hub has one key in a {@link HubDirectory}.
 *
 * @example
 * normalizeHubUrl('https://hub.example/'); // 'https://hub.example'
 */
export function normalizeHubUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (cause) {
    throw new MalformedMessageError('hub URL', '', `not a URL: ${url}`, cause);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new MalformedMessageError('hub URL', '', `expected http or https, got ${parsed.protocol}`);
  }
  if (parsed.search || parsed.hash) {
    throw new MalformedMessageError('hub URL', '', 'a hub URL has no query or fragment');
  }
  return `${parsed.origin}${parsed.pathname.replace(/\/+$/, '')}`;
}

/** An address of a path or query, checksummed; MalformedMessageError names `name` otherwise. */
export function pathAddress(value: string, name: string): Address {
  if (!isAddress(value, { strict: false })) {
    throw new MalformedMessageError(`${name} address`, name, `expected a 20-byte 0x-hex address, got ${value}`);
  }
  return getAddress(value);
}

/** The HTTP side of a {@link HubClient}: the base URL, timeouts, retries and headers of every request. */
export class HubTransport {
  /** The normalized base URL. */
  readonly url: string;
  readonly timeoutMs: number;
  readonly retry: ResolvedRetryOptions;
  readonly #http: HubHttp;
  readonly #headers: Record<string, string>;
  readonly #random: () => number;

  constructor(options: HubClientOptions) {
    this.url = normalizeHubUrl(options.url);
    this.timeoutMs = options.timeoutMs ?? 10_000;
    if (!(this.timeoutMs > 0)) throw new InvalidOptionError('timeoutMs', `expected > 0, got ${this.timeoutMs}`);
    this.retry = resolveRetryOptions(options.retry);
    if (options.http && options.fetch) {
      throw new InvalidOptionError('http', 'give http or fetch, not both', 'Each sends every request of the client.');
    }
    const fetchFunction = options.fetch ?? globalThis.fetch;
    if (!options.http && typeof fetchFunction !== 'function') {
      throw new InvalidOptionError(
        'fetch',
        'no fetch function is available',
        'Pass options.fetch on platforms without one.',
      );
    }
    // Unbound, window.fetch throws "Illegal invocation" in browsers.
    this.#http = options.http ?? fetchHttp(options.fetch ?? ((input, init) => globalThis.fetch(input, init)));
    this.#headers = { ...options.headers };
    this.#random = options.random ?? Math.random;
  }

  /** One attempt at `path` (GET): whether it answers 2xx; false on any failure but an abort. */
  async probe(path: string, options: Omit<HubRequestOptions, 'retry'> = {}): Promise<boolean> {
    try {
      const raw = await this.#send('GET', path, undefined, options, 1);
      return raw.status >= 200 && raw.status < 300;
    } catch (error) {
      if (error instanceof HubRequestAbortedError) throw error;
      return false;
    }
  }

  /** Sends `call`, retrying what may be retried, and decodes its answer; a refusal is a {@link HubError}. */
  async call<T>(call: Call<T>, options: HubRequestOptions = {}): Promise<T> {
    const attempts = options.retry === false ? 1 : this.retry.attempts;
    for (let attempt = 1; ; attempt++) {
      let failure: unknown;
      try {
        const raw = await this.#send(call.method, call.path, call.body, options, attempt, call.headers);
        if (raw.status >= 200 && raw.status < 300) {
          return call.decode(call.text ? raw.text : parseJson(raw.text, call.path));
        }
        failure = toHubError(raw, `${call.method} ${call.path}`, attempt);
      } catch (error) {
        if (!isRetryableHubError(error)) throw error;
        failure = error;
      }
      if (!isRetryableHubError(failure) || attempt >= attempts) throw failure;
      let delay = backoffDelay(attempt, this.retry, this.#random);
      if (failure instanceof HubError && failure.retryAfterMs !== undefined) {
        if (failure.retryAfterMs > this.retry.maxRetryAfterMs) throw failure;
        delay = failure.retryAfterMs;
      }
      try {
        await sleep(delay, options.signal);
      } catch (cause) {
        throw new HubRequestAbortedError(`${call.method} ${call.path}`, cause);
      }
    }
  }

  async #send(
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    options: HubRequestOptions,
    attempt: number,
    extraHeaders?: Record<string, string>,
  ): Promise<RawAnswer> {
    const request = `${method} ${path}`;
    const { signal } = options;
    if (signal?.aborted) throw new HubRequestAbortedError(request, signal.reason);
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    const onAbort = () => controller.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const headers: Record<string, string> = { accept: 'application/json', ...this.#headers, ...extraHeaders };
      if (body !== undefined) headers['content-type'] = 'application/json';
      return await this.#http({
        method,
        url: `${this.url}${path}`,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: controller.signal,
      });
    } catch (cause) {
      if (signal?.aborted) throw new HubRequestAbortedError(request, cause);
      if (timedOut) throw new HubTimeoutError(this.url, request, timeoutMs, attempt);
      throw new HubUnreachableError(this.url, request, attempt, cause);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }
}

/** A {@link HubHttp} over a `fetch`. */
function fetchHttp(fetch: typeof globalThis.fetch): HubHttp {
  return async ({ method, url, headers, body, signal }) => {
    const response = await fetch(url, { method, headers, body, signal });
    return { status: response.status, text: await response.text(), headers: response.headers };
  };
}

function parseJson(text: string, path: string): unknown {
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new MalformedMessageError(`answer to ${path}`, '', 'the body is not JSON', cause);
  }
}

function toHubError(raw: RawAnswer, request: string, attempts: number): HubError {
  let code: string | undefined;
  let message: string | undefined;
  let details: Record<string, unknown> | undefined;
  try {
    const body = JSON.parse(raw.text) as unknown;
    if (body !== null && typeof body === 'object') {
      const record = body as Record<string, unknown>;
      if (typeof record.code === 'string' && /^[A-Z][A-Z0-9_]{0,63}$/.test(record.code)) code = record.code;
      if (typeof record.message === 'string') message = record.message.slice(0, 1_000);
      if (record.details !== null && typeof record.details === 'object' && !Array.isArray(record.details)) {
        details = record.details as Record<string, unknown>;
      }
    }
  } catch {
    // Not JSON (a proxy's error page): the status says what happened.
  }
  return new HubError({
    code: code ?? codeForStatus(raw.status),
    status: raw.status,
    message,
    details,
    retryAfterMs: parseRetryAfter(raw.headers.get('retry-after')),
    request,
    attempts,
  });
}
