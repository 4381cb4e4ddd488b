import fastifyCors, { type FastifyCorsOptions } from '@fastify/cors';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { HubConfig } from '../config/config';

/**
 * What a web page may do with the API (CORS_ORIGINS): GET and POST with a JSON body, and read the
 * headers a client needs to back off. No credentials: the hub sets no cookies, and every request that
 * changes something is signed.
 *
 * @example
 * corsOptions(['https://wallet.example']).origin; // ['https://wallet.example']
 */
export function corsOptions(origins: '*' | string[]): FastifyCorsOptions {
  return {
    origin: origins,
    methods: ['GET', 'POST'],
    allowedHeaders: ['content-type'],
    exposedHeaders: ['retry-after', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset'],
    // Browsers cache a preflight this long (Chromium at most 2 hours).
    maxAge: 600,
    // An OPTIONS request without Origin is not a preflight; answer it 204 rather than with a text error.
    strictPreflight: false,
  };
}

/**
 * Answers preflights (`OPTIONS`) and adds the CORS headers to every answer, errors included: the
 * headers are set when the request arrives, before any route or limit runs. CORS_ORIGINS `none`
 * registers nothing (OPTIONS is then NOT_FOUND). Call it before the app listens.
 */
export async function registerCors(app: NestFastifyApplication, config: Pick<HubConfig, 'CORS_ORIGINS'>) {
  if (config.CORS_ORIGINS !== '*' && config.CORS_ORIGINS.length === 0) return;
  await app.register(fastifyCors, corsOptions(config.CORS_ORIGINS));
}
