import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ProviderLedger } from '@chit/sdk';
import { paymentMiddleware } from '@x402/express';
import express, { type Request, type Response } from 'express';
import type { Hex } from 'viem';
import { type ChitRoutePrices, chitPaywall } from './paywall.js';

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
  /** Who verifies a payment before the API is called: the seller alone after an agreement's first payment (default), or also the hub every time (`ChitServerSchemeOptions.verify`). */
  verify?: 'seller' | 'hub';
  /** How often to settle by the ledger's settlement policy (`ledger.maybeSettle()`), when it has one. Default 60 s. */
  settleEveryMs?: number;
  /** Told of what the gateway does: each paid request, settlements, upstream failures. */
  onEvent?: (event: GatewayEvent) => void;
}

/** What {@link startGateway} reports. */
export type GatewayEvent =
  | { type: 'forwarded'; method: string; path: string; status: number; bytes: number }
  | { type: 'upstream-error'; method: string; path: string; message: string }
  | { type: 'settlement'; detail: unknown }
  | { type: 'settlement-error'; message: string };

/** A running gateway. */
export interface Gateway {
  /** Where buyers reach it: `http://host:port`. */
  url: string;
  /** Stops taking requests and waits for those in flight. */
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
 * Every request is a chit-paid request (x402 with the `chit` scheme, `@x402/express`): without a payment
 * it is answered 402 with the route's requirements; a paid request is forwarded to `upstream`, and its
 * answer is returned with `PAYMENT-RESPONSE` once the buyer's promise is exchanged at the hub. The
 * response body's bytes are metered and paid with the buyer's next request (`pricePerMiB`). An upstream
 * answer of 400 or more is passed through and not charged; an unreachable upstream is `502`, not charged.
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

  const app = express();
  app.disable('x-powered-by');
  const origins = options.corsOrigins ?? [];
  if (origins.length > 0) {
    app.use((request: Request, response: Response, next: () => void) => {
      const origin = request.headers.origin;
      if (origin && (origins.includes('*') || origins.includes(origin))) {
        response.set({
          'access-control-allow-origin': origins.includes('*') ? '*' : origin,
          'access-control-expose-headers': 'PAYMENT-REQUIRED, PAYMENT-RESPONSE',
          vary: 'Origin',
        });
      }
      // A preflight is not a request for the API: answered here, never charged or forwarded.
      if (request.method === 'OPTIONS' && request.headers['access-control-request-method']) {
        response
          .set({
            'access-control-allow-methods': 'GET, HEAD, POST, PUT, PATCH, DELETE',
            'access-control-allow-headers':
              request.headers['access-control-request-headers'] ?? 'PAYMENT-SIGNATURE, Content-Type',
            'access-control-max-age': '600',
          })
          .status(204)
          .end();
        return;
      }
      next();
    });
  }
  app.use(paymentMiddleware(paywall.routes, paywall.server));
  app.use(express.raw({ type: () => true, limit: options.maxBodyBytes ?? 10 * 1024 * 1024 }));
  app.use(async (request: Request, response: Response) => {
    const target = `${upstream.origin}${prefix}${request.originalUrl}`;
    const headers = new Headers();
    for (const [name, value] of Object.entries(request.headers)) {
      if (value === undefined || HOP_BY_HOP.has(name) || PAYMENT_HEADERS.has(name)) continue;
      for (const item of Array.isArray(value) ? value : [value]) headers.append(name, item);
    }
    // The metered bytes are the bytes the buyer receives: no compression between the gateway and the API.
    headers.set('accept-encoding', 'identity');
    headers.append('x-forwarded-for', request.socket.remoteAddress ?? '');
    headers.set('x-forwarded-host', request.headers.host ?? '');
    headers.set('x-forwarded-proto', request.protocol);
    const hasBody =
      !['GET', 'HEAD'].includes(request.method) && Buffer.isBuffer(request.body) && request.body.length > 0;
    let answer: globalThis.Response;
    try {
      answer = await fetch(target, {
        method: request.method,
        headers,
        body: hasBody ? new Uint8Array(request.body as Buffer) : undefined,
        redirect: 'manual',
      });
    } catch (error) {
      const message =
        (error as Error).cause instanceof Error ? ((error as Error).cause as Error).message : String(error);
      emit({ type: 'upstream-error', method: request.method, path: request.originalUrl, message });
      response
        .status(502)
        .json({ code: 'UPSTREAM_UNREACHABLE', message: `the API behind this gateway did not answer: ${message}` });
      return;
    }
    const body = Buffer.from(await answer.arrayBuffer());
    response.status(answer.status);
    answer.headers.forEach((value, name) => {
      // fetch has decoded the body already: its length and encoding are the gateway's to state.
      if (HOP_BY_HOP.has(name) || name === 'content-encoding') return;
      response.append(name, value);
    });
    response.end(body);
    emit({
      type: 'forwarded',
      method: request.method,
      path: request.originalUrl,
      status: answer.status,
      bytes: body.length,
    });
  });

  const server: Server = await new Promise((resolve, reject) => {
    const listening = app.listen(options.port ?? 8402, options.host ?? '127.0.0.1', (error?: Error) =>
      error ? reject(error) : resolve(listening),
    );
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
      await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
    },
  };
}
