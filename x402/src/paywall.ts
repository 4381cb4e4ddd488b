import type { ProviderLedger } from '@chit/sdk';
import {
  type FacilitatorClient,
  HTTPFacilitatorClient,
  type RouteConfig,
  type RoutesConfig,
  x402ResourceServer,
} from '@x402/core/server';
import type { Network } from '@x402/core/types';
import type { Hex } from 'viem';
import { ChitServerScheme, type ChitServerSchemeOptions } from './server.js';
import { CHIT_SCHEME } from './wire.js';

/** The prices of a paid route, in token base units. */
export interface ChitRoutePrices {
  /** The price of one request (`amount`). */
  pricePerRequest?: bigint;
  /** The price per MiB (2^20 bytes) of response body, paid with the next request. */
  pricePerMiB?: bigint;
  description?: string;
  mimeType?: string;
}

/** Options of {@link chitPaywall}. */
export interface ChitPaywallOptions {
  /** The hub service URL; its facilitator is at `<hubUrl>/x402`. */
  hubUrl: string;
  /** The seller's ledger at that hub (opened here). */
  ledger: ProviderLedger;
  /** The seller's invoice secret, at least 32 bytes; keep it across restarts. */
  secret: Hex | Uint8Array;
  /** The default price of one request. */
  pricePerRequest?: bigint;
  /** The default price per MiB of response body. Default 0. */
  pricePerMiB?: bigint;
  /** The paid routes (`"GET /weather"`, `"/files/*"`): a list with the default prices, or prices by route. */
  routes: string[] | Record<string, ChitRoutePrices>;
  /** `maxTimeoutSeconds` of the requirements. Default 60. */
  maxTimeoutSeconds?: number;
  /** How long an invoice may be paid, in seconds. Default 300. */
  invoiceTtlSeconds?: number;
  /** Who verifies a payment before the request is served: the seller alone after an agreement's first payment (default), or also the hub every time. See {@link ChitServerSchemeOptions.verify}. */
  verify?: 'seller' | 'hub';
  /** The facilitator; default `new HTTPFacilitatorClient({ url: hubUrl + '/x402' })`. */
  facilitator?: FacilitatorClient;
  clock?: () => number;
}

/** What `paymentMiddleware(routes, server)` of `@x402/express` or `@x402/hono` takes, and the scheme. */
export interface ChitPaywall {
  routes: RoutesConfig;
  server: x402ResourceServer;
  scheme: ChitServerScheme;
  network: Network;
}

/**
 * Builds the x402 route configuration and resource server of a chit seller: one chit requirement per
 * route (its price per request as `amount`, its price per MiB in `extra`), the {@link ChitServerScheme}
 * registered on the hub's network, and the hub as facilitator. Routes of different prices are different
 * agreements.
 *
 * @example
 * import { paymentMiddleware } from '@x402/express';
 * const { routes, server } = await chitPaywall({
 *   hubUrl, ledger, secret,
 *   routes: { 'GET /weather': { pricePerRequest: 1000n }, 'GET /files/*': { pricePerRequest: 10n, pricePerMiB: 5000n } },
 * });
 * app.use(paymentMiddleware(routes, server));
 */
export async function chitPaywall(options: ChitPaywallOptions): Promise<ChitPaywall> {
  await options.ledger.open();
  const scheme = new ChitServerScheme({
    ledger: options.ledger,
    secret: options.secret,
    hubUrl: options.hubUrl,
    invoiceTtlSeconds: options.invoiceTtlSeconds,
    verify: options.verify,
    clock: options.clock,
  });
  const facilitator =
    options.facilitator ?? new HTTPFacilitatorClient({ url: `${options.hubUrl.replace(/\/+$/, '')}/x402` });
  const server = new x402ResourceServer(facilitator).register(scheme.network, scheme);
  const entries: [string, ChitRoutePrices][] = Array.isArray(options.routes)
    ? options.routes.map((route) => [route, {}])
    : Object.entries(options.routes);
  const routes: Record<string, RouteConfig> = {};
  for (const [route, prices] of entries) {
    const pricePerRequest = prices.pricePerRequest ?? options.pricePerRequest;
    if (pricePerRequest === undefined || pricePerRequest <= 0n) {
      throw new Error(`chitPaywall: route ${route} needs a pricePerRequest > 0`);
    }
    const pricePerMiB = prices.pricePerMiB ?? options.pricePerMiB ?? 0n;
    routes[route] = {
      accepts: {
        scheme: CHIT_SCHEME,
        network: scheme.network,
        payTo: scheme.provider,
        price: pricePerRequest.toString(),
        maxTimeoutSeconds: options.maxTimeoutSeconds ?? 60,
        extra: { pricePerMiB: pricePerMiB.toString() },
      },
      ...(prices.description ? { description: prices.description } : {}),
      ...(prices.mimeType ? { mimeType: prices.mimeType } : {}),
    };
  }
  return { routes, server, scheme, network: scheme.network };
}
