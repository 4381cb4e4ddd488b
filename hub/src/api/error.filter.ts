import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { HubError, STATUS_OF } from '../errors/hub-error';

/**
 * The HTTP edge of the hub's errors: a domain error becomes its status and stable code; a body
 * Fastify could not parse is MALFORMED; an unknown route NOT_FOUND; anything else INTERNAL (logged,
 * never leaked).
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
    this.logger.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
    void reply
      .status(500)
      .send({ code: 'INTERNAL', message: 'Internal error: try again (every request is idempotent)', details: {} });
    return 'INTERNAL';
  }
}
