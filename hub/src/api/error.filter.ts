import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { HubError, STATUS_OF } from '../errors/hub-error';

/**
 * The HTTP edge of the hub's errors: a domain error becomes its status and stable code; a body
 * Fastify could not parse is MALFORMED; an unknown route NOT_FOUND; Postgres out of reach UNAVAILABLE;
 * anything else INTERNAL (logged, never leaked).
 */
@Catch()
export class ErrorFilter implements ExceptionFilter {
  private readonly logger = new Logger('ErrorFilter');

  /** `counted` hears the code of every error answered (the metrics' error counter). */
  constructor(private readonly counted?: (code: string) => void) {}

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
    if (error instanceof HttpException) {
      const status = error.getStatus();
      const code = status === 404 ? 'NOT_FOUND' : status < 500 ? 'MALFORMED' : 'INTERNAL';
      void reply.status(status).send({ code, message: error.message, details: {} });
      return code;
    }
    const status = (error as { statusCode?: number }).statusCode;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      // Fastify's own errors: unparsable JSON, wrong content type, body too large.
      void reply.status(400).send({ code: 'MALFORMED', message: (error as Error).message, details: {} });
      return 'MALFORMED';
    }
    if (databaseUnreachable(error)) {
      this.logger.warn(`database unreachable: ${(error as Error).message}`);
      void reply
        .status(STATUS_OF.UNAVAILABLE)
        .send({ code: 'UNAVAILABLE', message: 'The database is unreachable: try again shortly', details: {} });
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
