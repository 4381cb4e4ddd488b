import {
  createServer,
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream';
import type { ProviderLedger } from '@chit/sdk';
import { encodePaymentResponseHeader } from '@x402/core/http';
import {
  getFacilitatorResponseError,
  type HTTPProcessResult,
  type HTTPRequestContext,
  type HTTPResponseInstructions,
  withPrivateCacheControl,
  x402HTTPResourceServer,
} from '@x402/core/server';
import type { SettleResponse } from '@x402/core/types';
import type { Hex } from 'viem';
import { NodeHttpAdapter } from './http-adapter.js';
import { type ChitRoutePrices, chitPaywall } from './paywall.js';
import { encodeHeader } from './wire.js';

/** Options of {@link startGateway}. */
export interface GatewayOptions {
  /** The API sold: requests are forwarded to this base URL (its path is a prefix of every forwarded path). */
  upstream: string;
  /** The hub service URL (its facilitator is `<hubUrl>/x402`). */
  hubUrl: string;
  /** The seller's ledger at that hub: it exchanges the buyers' promises and keeps the earnings. */
  ledger: ProviderLedger;
  /** The seller's invoice secret (at least 32 bytes); keep it across restarts. */
  secret: Hex | Uint8Array;
  /** The price of one request, in token base units, for every route without its own. */
  pricePerRequest: bigint;
  /** The price per MiB of response body, in token base units. Default 0. */
  pricePerMiB?: bigint;
  /** Prices by route (`"GET /weather"`, `"/files/*"`); other requests, and a price a route leaves out, are the defaults. */
  routes?: Record<string, ChitRoutePrices>;
  /**
   * Web origins whose pages may pay through the gateway (`*` for any): preflights are answered, and the
   * answers let the page read PAYMENT-REQUIRED and PAYMENT-RESPONSE. Default none.
   */
  corsOrigins?: string[];
  /** Default 8402. 0 takes a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** The largest request body forwarded, in bytes. Default 10 MiB. */
  maxBodyBytes?: number;
  /**
   * A paid answer that states its length, up to this many bytes, is read whole before its payment is
   * settled, so that an API breaking off in the middle of it is not paid (`502 UPSTREAM_BROKE_OFF`).
   * Longer answers, and those of no stated length (server-sent events), are settled once they have
   * begun and stream to the buyer as they come. Default 1 MiB.
   */
  wholeBodyBytes?: number;
  /** Who verifies a payment before the API is called: the seller alone after an agreement's first payment (default), or also the hub every time (`ChitServerSchemeOptions.verify`). */
  verify?: 'seller' | 'hub';
  /** How often to settle by the ledger's settlement policy (`ledger.maybeSettle()`), when it has one. Default 60 s. */
  settleEveryMs?: number;
  /** Told of what the gateway does: each paid request, settlements, upstream failures. */
  onEvent?: (event: GatewayEvent) => void;
}

/**
 * What {@link startGateway} reports: each answer relayed whole (`forwarded`), an API that did not
 * answer, an answer cut off on the way (the API's body broke off, or the buyer went away: the bytes
 * relayed are metered all the same), settlements.
 */
export type GatewayEvent =
  | { type: 'forwarded'; method: string; path: string; status: number; bytes: number }
  | { type: 'upstream-error'; method: string; path: string; message: string }
  | { type: 'cut-off'; method: string; path: string; status: number; bytes: number }
  | { type: 'settlement'; detail: unknown }
  | { type: 'settlement-error'; message: string };

/** A running gateway. */
export interface Gateway {
  /** Where buyers reach it: `http://host:port`. */
  url: string;
  /**
   * Stops taking requests and waits for those in flight, at most 5 s: a stream still open then (server-sent
   * events) is cut, the bytes relayed metered.
   */
  close(): Promise<void>;
}

// Hop-by-hop headers (RFC 9110 §7.6.1) and those the gateway sets itself are not forwarded.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'content-length',
]);
// Never sent upstream: the buyer's payment is the gateway's business.
const PAYMENT_HEADERS = new Set(['payment-signature', 'x-payment']);

/**
 * A paid reverse proxy in front of an HTTP API that knows nothing of payments: `chit provide http`.
 * Every request is a chit-paid request (x402 with the `chit` scheme, through `@x402/core`'s HTTP
 * resource server on node:http, with no framework between): without a payment it is answered 402 with
 * the route's requirements; a paid request is forwarded to `upstream` on kept-alive connections, and its
 * answer is returned with `PAYMENT-RESPONSE` once the buyer's promise is exchanged at the hub: read whole
 * first when it states a length up to `wholeBodyBytes`, else streamed once paid (see that option). The
 * response body's bytes are metered and paid with the buyer's next request (`pricePerMiB`). An upstream
 * answer of 400 or more is passed through and not charged; an unreachable upstream is `502`, not charged;
 * a request body over `maxBodyBytes` is `413`, not charged.
 *
 * Earnings live in the ledger's store (a `FileStore` survives restarts; a lost store is recovered from
 * the hub); settlement follows the ledger's policy every `settleEveryMs`.
 *
 * @example
 * const gateway = await startGateway({ upstream: 'http://127.0.0.1:3000', hubUrl, ledger, secret, pricePerRequest: 10n ** 15n });
 * console.log(`selling at ${gateway.url}`);
 */
export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const upstream = new URL(options.upstream);
  const prefix = upstream.pathname.replace(/\/+$/, '');
  const defaults: ChitRoutePrices = {
    pricePerRequest: options.pricePerRequest,
    pricePerMiB: options.pricePerMiB ?? 0n,
  };
  // x402 takes the first matching route: the specific ones (what they leave out at the defaults),
  // then everything else at the defaults.
  const routes: Record<string, ChitRoutePrices> = {};
  for (const [route, prices] of Object.entries(options.routes ?? {})) {
    routes[route] = {
      ...defaults,
      ...Object.fromEntries(Object.entries(prices).filter(([, value]) => value !== undefined)),
    };
  }
  const paywall = await chitPaywall({
    hubUrl: options.hubUrl,
    ledger: options.ledger,
    secret: options.secret,
    routes: { ...routes, '*': defaults },
    verify: options.verify,
  });
  const emit = options.onEvent ?? (() => {});

  const origins = options.corsOrigins ?? [];
  const maxBodyBytes = options.maxBodyBytes ?? 10 * 1024 * 1024;
  const wholeBodyBytes = options.wholeBodyBytes ?? 1024 * 1024;
  const forward = upstreamForwarder(upstream);
  const x402 = new GatewayResourceServer(paywall.server, paywall.routes);
  // Asks the facilitator what it supports on the first request, and again on the next if that failed.
  let initialized: Promise<void> | undefined;
  const initialize = () => {
    initialized ??= x402.initialize().catch((error: unknown) => {
      initialized = undefined;
      throw error;
    });
    return initialized;
  };

  /** A request to the API: paid, forwarded, settled, answered (the gateway's whole work, on node:http). */
  const serve = async (request: IncomingMessage, response: ServerResponse) => {
    const url = request.url ?? '/';
    const method = request.method ?? 'GET';
    const origin = request.headers.origin;
    if (origins.length > 0 && origin && (origins.includes('*') || origins.includes(origin))) {
      response.setHeader('access-control-allow-origin', origins.includes('*') ? '*' : origin);
      response.setHeader('access-control-expose-headers', 'PAYMENT-REQUIRED, PAYMENT-RESPONSE');
      response.setHeader('vary', 'Origin');
    }
    // A preflight is not a request for the API: answered here, never charged or forwarded.
    if (origins.length > 0 && method === 'OPTIONS' && request.headers['access-control-request-method']) {
      response.setHeader('access-control-allow-methods', 'GET, HEAD, POST, PUT, PATCH, DELETE');
      response.setHeader(
        'access-control-allow-headers',
        request.headers['access-control-request-headers'] ?? 'PAYMENT-SIGNATURE, Content-Type',
      );
      response.setHeader('access-control-max-age', '600');
      response.writeHead(204).end();
      return;
    }

    const adapter = new NodeHttpAdapter(request, () => `http://${request.headers.host ?? 'localhost'}`);
    const context: HTTPRequestContext = {
      adapter,
      path: adapter.getPath(),
      method,
      paymentHeader: adapter.getHeader('payment-signature') ?? adapter.getHeader('x-payment'),
    };
    let result: HTTPProcessResult;
    try {
      await initialize();
      result = await x402.processHTTPRequest(context);
    } catch (error) {
      const facilitator = getFacilitatorResponseError(error);
      if (facilitator) return sendJson(response, 502, { error: facilitator.message });
      return sendJson(response, 500, { code: 'GATEWAY_ERROR', message: (error as Error).message });
    }
    if (result.type === 'payment-error') return sendInstructions(response, result.response);
    const verified = result.type === 'payment-verified' ? result : undefined;
    const cancel = (status: number) =>
      verified?.cancellationDispatcher.cancel({ reason: 'handler_failed', responseStatus: status });
    /** The API failed the request (no answer, or one broken off): 502, nothing charged. */
    const upstreamFailed = async (code: string, what: string, error: unknown) => {
      const message = (error as Error).message;
      emit({ type: 'upstream-error', method, path: url, message: `it ${what}: ${message}` });
      await cancel(502);
      sendJson(response, 502, { code, message: `the API behind this gateway ${what}: ${message}` });
    };

    let body: Buffer | undefined;
    try {
      body = await readBody(request, maxBodyBytes);
    } catch (error) {
      await cancel(413);
      return sendJson(response, 413, { code: 'BODY_TOO_LARGE', message: (error as Error).message });
    }
    const headers: OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(request.headers)) {
      if (value === undefined || HOP_BY_HOP.has(name) || PAYMENT_HEADERS.has(name)) continue;
      headers[name] = value;
    }
    // The metered bytes are the bytes the buyer receives: the API is asked not to compress, and what it
    // sends is passed on as it is (with its content-encoding, if it compressed anyway).
    headers['accept-encoding'] = 'identity';
    const forwardedFor = request.headers['x-forwarded-for'];
    headers['x-forwarded-for'] = [forwardedFor, request.socket.remoteAddress ?? ''].filter(Boolean).join(', ');
    headers['x-forwarded-host'] = request.headers.host ?? '';
    headers['x-forwarded-proto'] = 'http';
    let answer: IncomingMessage;
    try {
      answer = await forward(method, `${prefix}${url}`, headers, body);
    } catch (error) {
      return upstreamFailed('UPSTREAM_UNREACHABLE', 'did not answer', error);
    }
    const answerHeaders: Record<string, string | string[]> = {};
    for (let i = 0; i < answer.rawHeaders.length; i += 2) {
      const name = answer.rawHeaders[i]!.toLowerCase();
      if (HOP_BY_HOP.has(name)) continue;
      const value = answer.rawHeaders[i + 1]!;
      const before = answerHeaders[name];
      answerHeaders[name] = before === undefined ? value : [...(Array.isArray(before) ? before : [before]), value];
    }
    const status = answer.statusCode ?? 502;
    // An API error is passed through as it is, and not charged.
    const charged = verified !== undefined && status < 400;
    if (verified && !charged) await cancel(status);
    // A paid answer of a stated length up to wholeBodyBytes is read whole before it is settled: an API
    // that breaks off in the middle of it is not paid. A longer one, or one of no stated length (a
    // stream of events), is settled once it has begun and relayed as it comes.
    const length = Number(answer.headers['content-length'] ?? Number.NaN);
    let whole: Buffer | undefined;
    if (charged && Number.isSafeInteger(length) && length <= wholeBodyBytes) {
      try {
        whole = await readAll(answer);
      } catch (error) {
        return upstreamFailed('UPSTREAM_BROKE_OFF', 'broke off its answer', error);
      }
    }
    if (verified && charged) {
      const responseHeaders: Record<string, string> = {};
      for (const [name, value] of Object.entries(answerHeaders)) responseHeaders[name] = String(value);
      let settled: Awaited<ReturnType<typeof x402.processSettlement>>;
      try {
        // A body relayed as it comes is settled before it is read: its bytes are paid with the buyer's
        // next request, so the settlement does not need them; they are metered once relayed.
        settled = await x402.processSettlement(
          verified.paymentPayload,
          verified.paymentRequirements,
          verified.declaredExtensions,
          { request: context, responseBody: whole ?? NO_BODY, responseHeaders },
        );
      } catch (error) {
        // The response is withheld: the payment was not settled.
        answer.destroy();
        const facilitator = getFacilitatorResponseError(error);
        return facilitator ? sendJson(response, 502, { error: facilitator.message }) : sendJson(response, 402, {});
      }
      if (!settled.success) {
        // A payment the hub refused: the 402 of a failed settlement, the API's answer withheld.
        answer.destroy();
        return sendInstructions(response, settled.response);
      }
      for (const [name, value] of Object.entries(settled.headers)) response.setHeader(name, value);
      const cache = answerHeaders['cache-control'];
      answerHeaders['cache-control'] = withPrivateCacheControl(cache === undefined ? null : String(cache));
    }
    for (const [name, value] of Object.entries(answerHeaders)) response.setHeader(name, value);
    response.statusCode = status;
    if (whole) {
      // Metered by its settlement; its length is stated by end().
      response.end(whole);
      emit({ type: 'forwarded', method, path: url, status, bytes: whole.length });
      return;
    }
    // Relayed as it is: with its stated length (the buyer sees its progress, and a cut-off), and its
    // head sent at once (a stream of events may be slow to send its first).
    const stated = answer.headers['content-length'];
    if (stated !== undefined) response.setHeader('content-length', stated);
    response.flushHeaders();
    const { bytes, complete } = await relay(answer, response);
    // The bytes relayed are metered for the buyer's next request, whole or cut off: a buyer that left
    // before the end of a body it was reading pays what it was sent (its next payment catches up with
    // this meter, up to its maxUnreceivedBytes), or reading most of a download would be free.
    if (charged) await paywall.scheme.addResponseBytes(verified.paymentPayload, bytes);
    if (complete) emit({ type: 'forwarded', method, path: url, status, bytes });
    else emit({ type: 'cut-off', method, path: url, status, bytes });
  };

  const server: Server = createServer((request, response) => {
    serve(request, response).catch((error: Error) => {
      if (!response.headersSent) sendJson(response, 500, { code: 'GATEWAY_ERROR', message: error.message });
      else response.destroy(error);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8402, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const settling = options.ledger.hasSettlementPolicy
    ? setInterval(() => {
        options.ledger.maybeSettle().then(
          (detail) => {
            if (detail.job || detail.decision) emit({ type: 'settlement', detail });
          },
          (error: Error) => emit({ type: 'settlement-error', message: error.message }),
        );
      }, options.settleEveryMs ?? 60_000)
    : undefined;
  settling?.unref();
  const { port } = server.address() as AddressInfo;
  const host = options.host ?? '127.0.0.1';
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    close: async () => {
      clearInterval(settling);
      const closed = new Promise<void>((resolve, reject) =>
        server.close((error) => (error ? reject(error) : resolve())),
      );
      server.closeIdleConnections();
      // A stream still open (server-sent events) is cut after the grace; its bytes relayed are metered.
      const cut = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
      try {
        await closed;
      } finally {
        clearTimeout(cut);
        forward.close();
      }
    },
  };
}

/**
 * `@x402/core`'s HTTP resource server, its PAYMENT-RESPONSE encoded as its own encoder writes it, with
 * Node's Buffer instead of its string built byte by byte for `btoa`: about 45 µs less per paid request.
 */
class GatewayResourceServer extends x402HTTPResourceServer {
  override createSettlementHeaders(settleResponse: SettleResponse): Record<string, string> {
    // What the buyer sees: the response without the extensions' own answers, as x402 leaves them out.
    const { extensionResponses: _, ...buyerFacing } = settleResponse;
    return { 'PAYMENT-RESPONSE': encodeHeader(buyerFacing, encodePaymentResponseHeader) };
  }
}

/**
 * Sends requests to the API on kept-alive connections (node:http: a forwarded request costs a fraction
 * of what `fetch` costs), never following a redirect: the buyer gets the API's own answer. Resolves
 * with the answer once its head has arrived; its body is read as it is relayed.
 *
 * A connection left idle for {@link UPSTREAM_IDLE_MS} is closed here, before most servers close theirs
 * (Node's after 5 s), so that a request is rarely sent on a connection the API is closing. When it is
 * all the same (reset on a reused connection: the API closed it without reading the request), a request
 * of an idempotent method is sent again once, on a connection of its own; any other is a 502, not charged.
 */
function upstreamForwarder(upstream: URL) {
  const secure = upstream.protocol === 'https:';
  const options = { keepAlive: true, timeout: UPSTREAM_IDLE_MS };
  const agent = secure ? new HttpsAgent(options) : new HttpAgent(options);
  const send = secure ? httpsRequest : httpRequest;
  const hostname = upstream.hostname.replace(/^\[|\]$/g, '');
  const forward = (
    method: string,
    path: string,
    headers: OutgoingHttpHeaders,
    body: Buffer | undefined,
  ): Promise<IncomingMessage> =>
    new Promise((resolve, reject) => {
      const attempt = (again: boolean) => {
        let answered = false;
        const outgoing = send(
          {
            protocol: upstream.protocol,
            hostname,
            port: upstream.port,
            method,
            path,
            headers: { ...headers, host: upstream.host },
            agent: again ? false : agent,
          },
          (answer) => {
            answered = true;
            resolve(answer);
          },
        );
        outgoing.on('error', (error: NodeJS.ErrnoException) => {
          // Reset before any answer, on a connection used before: closed by the API as the request left.
          const closedUnderIt =
            !answered && outgoing.reusedSocket && (error.code === 'ECONNRESET' || error.code === 'EPIPE');
          if (!again && closedUnderIt && IDEMPOTENT.has(method)) attempt(true);
          else reject(error);
        });
        outgoing.end(body);
      };
      attempt(false);
    });
  return Object.assign(forward, { close: () => agent.destroy() });
}

/** How long a connection to the API stays open unused: below the 5 s after which Node's servers close theirs. */
const UPSTREAM_IDLE_MS = 4_000;

/** Methods a request of which may be sent twice (RFC 9110 §9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** The API's body relayed to the buyer as it comes: the bytes relayed, and whether it reached the buyer whole. */
function relay(from: IncomingMessage, to: ServerResponse): Promise<{ bytes: number; complete: boolean }> {
  return new Promise((resolve) => {
    let bytes = 0;
    from.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
    });
    pipeline(from, to, (error) => resolve({ bytes, complete: !error && from.complete }));
  });
}

/** The whole body of an answer. */
function readAll(from: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    from.on('data', (chunk: Buffer) => chunks.push(chunk));
    from.on('error', reject);
    from.on('close', () => {
      if (!from.complete) reject(new Error('the connection closed before the end of the body'));
    });
    from.on('end', () => resolve(Buffer.concat(chunks)));
  });
}

/** How long {@link Gateway.close} waits for the requests in flight before it cuts them. */
const CLOSE_GRACE_MS = 5_000;

/** The body the settlement is told of: none yet (the gateway meters the body once it is relayed). */
const NO_BODY = Buffer.alloc(0);

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  response.end(JSON.stringify(body));
}

/** What x402 says to answer (a 402 with PAYMENT-REQUIRED, or a failed settlement's). */
function sendInstructions(response: ServerResponse, instructions: HTTPResponseInstructions): void {
  for (const [name, value] of Object.entries(instructions.headers)) response.setHeader(name, value);
  if (instructions.isHtml) {
    response.writeHead(instructions.status, { 'content-type': 'text/html; charset=utf-8' });
    response.end(String(instructions.body ?? ''));
  } else {
    sendJson(response, instructions.status, instructions.body ?? {});
  }
}

/** The request's body, up to `limit` bytes; undefined when it has none. */
function readBody(request: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const declared = Number(request.headers['content-length'] ?? 0);
    if (declared > limit) {
      request.resume();
      reject(new Error(`the request body is ${declared} bytes, more than the ${limit} this gateway forwards`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        request.destroy();
        reject(new Error(`the request body is more than the ${limit} bytes this gateway forwards`));
        return;
      }
      chunks.push(chunk);
    });
    request.on('error', reject);
    request.on('end', () => resolve(size === 0 ? undefined : Buffer.concat(chunks)));
  });
}
