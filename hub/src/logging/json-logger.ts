import { Logger, type LoggerService } from '@nestjs/common';
import pino, { type Logger as Pino } from 'pino';

/**
 * Nest's static logger as pino JSON lines, from the first line on. Nest logs through its coloured
 * console logger until the application's own (nestjs-pino) is in place, and the hub logs before
 * that: Redis and chain outages while it connects. Installed once per process by `useJsonLogs`.
 */
export class JsonLogger implements LoggerService {
  constructor(private readonly pino: Pino) {}

  log(message: unknown, ...rest: unknown[]) {
    this.write('info', message, rest);
  }
  error(message: unknown, ...rest: unknown[]) {
    this.write('error', message, rest);
  }
  warn(message: unknown, ...rest: unknown[]) {
    this.write('warn', message, rest);
  }
  debug(message: unknown, ...rest: unknown[]) {
    this.write('debug', message, rest);
  }
  verbose(message: unknown, ...rest: unknown[]) {
    this.write('trace', message, rest);
  }
  fatal(message: unknown, ...rest: unknown[]) {
    this.write('fatal', message, rest);
  }

  private write(level: pino.Level, message: unknown, rest: unknown[]) {
    // Nest passes the context (the logger's name) last, and an error's stack before it.
    const context = typeof rest.at(-1) === 'string' ? (rest.at(-1) as string) : undefined;
    const stack = rest.length > 1 && typeof rest[0] === 'string' ? rest[0] : undefined;
    const fields = { ...(context && { context }), ...(stack && { stack }) };
    if (message instanceof Error) this.pino[level]({ ...fields, err: message }, message.message);
    else if (typeof message === 'object' && message !== null) this.pino[level]({ ...fields, ...message });
    else this.pino[level](fields, String(message));
  }
}

/** Sends everything Nest's static `Logger` writes to JSON lines at `level` (LOG_LEVEL). */
export function useJsonLogs(level: string): void {
  Logger.overrideLogger(new JsonLogger(pino({ level })));
}
