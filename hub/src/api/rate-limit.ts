import fastifyRateLimit, { type RateLimitPluginOptions } from '@fastify/rate-limit';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyRequest } from 'fastify';
import Redis from 'ioredis';
import type { HubConfig } from '../config/config';
import { HubError } from '../errors/hub-error';

/** Routes no limit applies to: the operator's probes and scrapes. */
const UNLIMITED_ROUTES = new Set(['/health', '/ready', '/metrics']);

/** Whether `request` is exempt from the limits: a probe, a scrape, or a CORS preflight. */
export function unlimited(request: Pick<FastifyRequest, 'method' | 'routeOptions'>): boolean {
  return request.method === 'OPTIONS' || UNLIMITED_ROUTES.has(request.routeOptions.url ?? '');
}

/**
 * The answer over the limit: the hub's error shape, thrown to the error filter, which counts it. The
 * plugin has set `Retry-After` (whole seconds, rounded up) from the same time left.
 *
 * @example
 * rateLimited(1_500).details; // { retryAfterSeconds: 2 }
 */
export function rateLimited(msLeft: number): HubError {
  const retryAfterSeconds = Math.ceil(msLeft / 1000);
  return new HubError('RATE_LIMITED', `Too many requests from this address: retry in ${retryAfterSeconds} s`, {
    retryAfterSeconds,
  });
}

/**
 * Limits each client address (`request.ip`: the connection's peer, or what a proxy TRUST_PROXY trusts
 * says; an IPv6 client by its /64 network) to RATE_LIMIT_MAX requests per RATE_LIMIT_WINDOW_MS across every route but /health, /ready and
 * /metrics. The counts live in Redis under `<QUEUE_PREFIX>:rate-limit:`, so every replica of the hub
 * shares them. They take a connection of their own that never queues: when Redis is out of reach, the
 * API answers unlimited rather than waits (the limits protect the hub; they are not its books). Off
 * when RATE_LIMIT_MAX is 0 or the process serves no API. Call it before the app listens.
 */
export async function registerRateLimit(
  app: NestFastifyApplication,
  config: Pick<HubConfig, 'RATE_LIMIT_MAX' | 'RATE_LIMIT_WINDOW_MS' | 'REDIS_URL' | 'QUEUE_PREFIX' | 'HUB_ROLE'>,
): Promise<void> {
  if (config.RATE_LIMIT_MAX === 0 || config.HUB_ROLE === 'worker') return;
  const redis = new Redis(config.REDIS_URL, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    // A Redis that hangs delays a request this long at most.
    commandTimeout: 500,
  });
  // The hub's main connection logs Redis errors already.
  redis.on('error', () => {});
  await redis.connect();
  app
    .getHttpAdapter()
    .getInstance()
    .addHook('onClose', async () => {
      await redis.quit().catch(() => redis.disconnect());
    });
  const options: RateLimitPluginOptions = {
    global: true,
    max: config.RATE_LIMIT_MAX,
    timeWindow: config.RATE_LIMIT_WINDOW_MS,
    redis,
    nameSpace: `${config.QUEUE_PREFIX}:rate-limit:`,
    skipOnError: true,
    allowList: unlimited,
    errorResponseBuilder: (_request, context) => rateLimited(context.ttl),
  };
  await app.register(fastifyRateLimit, options);
}
