import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Controller, Get, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { HubError } from '../errors/hub-error';

/**
 * Where the dashboard's build is: dashboard/dist in the repository (and in the hub's image), three
 * folders above this file whether it runs from hub/src/dashboard or from hub/dist/dashboard.
 * CHIT_DASHBOARD_DIR overrides it.
 */
export function dashboardDir(): string {
  return path.resolve(process.env.CHIT_DASHBOARD_DIR || path.join(__dirname, '..', '..', '..', 'dashboard', 'dist'));
}

/** The files of the build the hub serves, and their types: nothing else is read from disk. */
const ASSETS: Readonly<Record<string, string>> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
};

/**
 * Scripts and styles from the dashboard's own files only; requests to this origin only (the API and
 * /metrics); no frames, no forms elsewhere. Charts are drawn on canvas; uPlot sets element styles from
 * script, which style-src 'self' allows.
 */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const NOT_BUILT = `The dashboard is not built: run \`npm run build -w dashboard\` in the Chit repository (it writes dashboard/dist), or set CHIT_DASHBOARD_DIR to a folder holding its index.html, app.js and app.css; then reload.\n`;

/**
 * The dashboard (docs/history.md, "Dashboard"): a static page served with the API. `/dashboard` sends
 * the browser to `/dashboard/`, so that the page's relative links (its assets, and the API above it)
 * hold behind a proxy that serves the hub under a path.
 */
@Controller()
export class DashboardController {
  @Get('dashboard')
  redirect(@Req() request: FastifyRequest, @Res() reply: FastifyReply) {
    // The query goes along (the page reads its settings from it).
    const query = request.url.includes('?') ? request.url.slice(request.url.indexOf('?')) : '';
    return reply.status(302).header('location', `dashboard/${query}`).header('cache-control', 'no-cache').send();
  }

  /** `/dashboard/` (the page) and `/dashboard/<asset>`. */
  @Get('dashboard/*')
  asset(@Req() request: FastifyRequest, @Res() reply: FastifyReply) {
    const name = (request.params as Record<string, string | undefined>)['*'] ?? '';
    return this.send(reply, name === '' ? 'index.html' : name);
  }

  private async send(reply: FastifyReply, name: string) {
    // Only the names listed: no path reaches the disk from the request.
    const type = Object.hasOwn(ASSETS, name) ? ASSETS[name] : undefined;
    if (!type) {
      // Like every error answer, it does not repeat the request's path.
      throw new HubError('NOT_FOUND', 'The dashboard has no such file: it serves index.html, app.js and app.css');
    }
    let body: Buffer;
    try {
      body = await readFile(path.join(dashboardDir(), name));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      return reply.status(503).header('content-type', 'text/plain; charset=utf-8').send(NOT_BUILT);
    }
    return reply
      .header('content-type', type)
      .header('cache-control', 'no-cache')
      .header('content-security-policy', DASHBOARD_CSP)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .send(body);
  }
}
