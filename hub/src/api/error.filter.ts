import { maxHeaderSize } from 'node:http';
import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import type { ChainService } from '../chain/chain.service';
import { rpcUnreachable } from '../chain/rpc-errors';
import { HubError, type HubErrorCode, STATUS_OF } from '../errors/hub-error';

/** Limits of the HTTP layer, which answers BODY_TOO_LARGE, URI_TOO_LONG and HEADERS_TOO_LARGE beyond them. */
export const HTTP_LIMITS = {
  bodyBytes: 64 * 1024,
  /** The longest settlement id, `beneficiary-<address>-<uint256>`, has 133 characters. */
  paramLength: 140,
  /** Node's limit on the request line and headers together. */
  headerBytes: maxHeaderSize,
};

/** An error answer: its status and body. */
export interface ErrorAnswer {
  status: number;
  body: { code: HubErrorCode; message: string; details: Record<string, unknown> };
}

const answerOf = (code: HubErrorCode, message: string, details: Record<string, unknown> = {}): ErrorAnswer => ({
  status: STATUS_OF[code],
  body: { code, message, details },
});

/** Messages of the MALFORMED answers to what Fastify refuses, by its error code. */
const MALFORMED_BY_FASTIFY_CODE: Record<string, [string, Record<string, unknown>]> = {
  FST_ERR_CTP_INVALID_JSON_BODY: ['The body is not valid JSON', { path: '' }],
  FST_ERR_CTP_EMPTY_JSON_BODY: ['The body is empty: send a JSON object', { path: '' }],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: ['The body is not as long as its Content-Length', { path: '' }],
  FST_ERR_BAD_URL: ['The path is not valid percent-encoded UTF-8', {}],
};

/**
 * The answer to an error the HTTP layer raised (Fastify, Node's HTTP parser, Nest's router), from its
 * status and Fastify's code. The message is the hub's own: it never repeats the request.
 *
 * @example
 * httpLayerAnswer(413).body.code; // 'BODY_TOO_LARGE'
 */
export function httpLayerAnswer(status: number, fastifyCode?: string): ErrorAnswer {
  switch (status) {
    case 404:
      return answerOf('NOT_FOUND', 'No such route');
    case 408:
      return answerOf('REQUEST_TIMEOUT', 'The request did not arrive in time: send it again');
    case 413:
      return answerOf('BODY_TOO_LARGE', `The body is over ${HTTP_LIMITS.bodyBytes} bytes`, {
        limit: HTTP_LIMITS.bodyBytes,
      });
    case 414:
      return answerOf('URI_TOO_LONG', `A path parameter is over ${HTTP_LIMITS.paramLength} characters`, {
        limit: HTTP_LIMITS.paramLength,
      });
    case 415:
      return answerOf('UNSUPPORTED_MEDIA_TYPE', 'Send the body as JSON, with Content-Type: application/json');
    case 431:
      return answerOf('HEADERS_TOO_LARGE', `The request line and headers are over ${HTTP_LIMITS.headerBytes} bytes`, {
        limit: HTTP_LIMITS.headerBytes,
      });
  }
  if (status >= 500) return answerOf('INTERNAL', 'Internal error: try again (every request is idempotent)');
  const [message, details] = MALFORMED_BY_FASTIFY_CODE[fastifyCode ?? ''] ?? ['The request is not valid HTTP', {}];
  return answerOf('MALFORMED', message, details);
}

/**
 * The answer to an error of Node's HTTP parser (the server's `clientError`): headers over its limit,
 * a request that took too long, or bytes that are not HTTP.
 *
 * @example
 * clientErrorAnswer(Object.assign(new Error(), { code: 'HPE_HEADER_OVERFLOW' })).status; // 431
 */
export function clientErrorAnswer(error: Error & { code?: string }): ErrorAnswer {
  if (error.code === 'HPE_HEADER_OVERFLOW') return httpLayerAnswer(431);
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') return httpLayerAnswer(408);
  return httpLayerAnswer(400);
}

/**
 * The HTTP edge of the hub's errors: a domain error becomes its status and stable code; what the HTTP
 * layer refuses (unparsable JSON, wrong content type, a body too large, an unknown route) its own code
 * ({@link httpLayerAnswer}); Postgres or the chain RPC out of reach UNAVAILABLE; anything else INTERNAL (logged, never
 * leaked).
 */
@Catch()
export class ErrorFilter implements ExceptionFilter {
  private readonly logger = new Logger('ErrorFilter');

  /**
   * `counted` hears the code of every error answered (the metrics' error counter); `chain` logs the RPC
   * outages that failed a request.
   */
  constructor(
    private readonly counted?: (code: string) => void,
    private readonly chain?: ChainService,
  ) {}

  catch(error: unknown, host: ArgumentsHost): void {
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    const code = this.answer(error, reply);
    this.counted?.(code);
  }

  /** Sends the error's answer; returns its code. */
  private answer(error: unknown, reply: FastifyReply): string {
    if (error instanceof HubError) {
      void reply
        .status(STATUS_OF[error.code])
        .send({ code: error.code, message: error.message, details: error.details });
      return error.code;
    }
    const status = error instanceof HttpException ? error.getStatus() : (error as { statusCode?: unknown }).statusCode;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      // Nest's router (no such route) and Fastify's own errors: unparsable JSON, wrong content type, body too large.
      const answer = httpLayerAnswer(status, (error as { code?: string }).code);
      void reply.status(answer.status).send(answer.body);
      return answer.body.code;
    }
    if (databaseUnreachable(error)) {
      this.logger.warn(`database unreachable: ${(error as Error).message}`);
      void reply
        .status(STATUS_OF.UNAVAILABLE)
        .send({ code: 'UNAVAILABLE', message: 'The database is unreachable: try again shortly', details: {} });
      return 'UNAVAILABLE';
    }
    if (rpcUnreachable(error)) {
      // Never the RPC's URL or viem's message: the URL may hold an API key, the message a whole request.
      if (this.chain) this.chain.unreachable(error);
      else this.logger.warn('the chain RPC is unreachable');
      void reply
        .status(STATUS_OF.UNAVAILABLE)
        .send({ code: 'UNAVAILABLE', message: 'The chain RPC is unreachable: try again shortly', details: {} });
      return 'UNAVAILABLE';
    }
    this.logger.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
    void reply
      .status(500)
      .send({ code: 'INTERNAL', message: 'Internal error: try again (every request is idempotent)', details: {} });
    return 'INTERNAL';
  }
}

/** Socket errors on the way to Postgres, and Postgres shutting down, starting or refusing connections. */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND']);

/** Whether `error` says Postgres is out of reach (rather than that a query is wrong). */
function databaseUnreachable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') {
    // SQLSTATE class 08 (connection exception), 57P01-57P03 (admin shutdown, crash shutdown, cannot connect now).
    return UNREACHABLE.has(code) || code.startsWith('08') || /^57P0[123]$/.test(code);
  }
  // node-postgres' own errors when a connection drops or times out carry no code.
  return /^Connection terminated|^timeout exceeded when trying to connect/.test(error.message);
}
