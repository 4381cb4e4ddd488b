import type { IncomingHttpHeaders } from 'node:http';
import type { HTTPAdapter } from '@x402/core/server';

/** What x402 reads of a request in Node: node:http's `IncomingMessage` and Fastify's request both have it. */
interface NodeRequest {
  headers: IncomingHttpHeaders;
  method?: string;
  url?: string;
}

/**
 * x402's view of a Node request (the gateway's node:http requests, chitFastify's): its headers, method,
 * path and URL; `origin` is the scheme and host the URL starts with.
 */
export class NodeHttpAdapter implements HTTPAdapter {
  constructor(
    private readonly request: NodeRequest,
    private readonly origin: () => string,
  ) {}
  getHeader(name: string): string | undefined {
    const value = this.request.headers[name.toLowerCase()];
    return Array.isArray(value) ? value[0] : value;
  }
  getMethod(): string {
    return this.request.method ?? 'GET';
  }
  getPath(): string {
    return (this.request.url ?? '/').split('?')[0]!;
  }
  getUrl(): string {
    return `${this.origin()}${this.request.url ?? '/'}`;
  }
  getAcceptHeader(): string {
    return this.getHeader('accept') ?? '';
  }
  getUserAgent(): string {
    return this.getHeader('user-agent') ?? '';
  }
}
