import { wireIssuePath } from '@chit/sdk';
import { z } from 'zod';
import { TunnelError } from './errors.js';

/**
 * The control protocol: one JSON object per line (newline-delimited JSON) on a TCP connection to the
 * provider's port, which tells it from SOCKS5 and HTTP CONNECT by its first byte, `{`.
 *
 * consumer → provider: `hello`, then `promise` for each invoice it pays, or `refused` before it leaves.
 * Every connection is a new agreement; a promise for an earlier agreement of the same consumer (sent
 * again after a lost connection or a provider restart) is checked against that agreement's stored
 * invoices and exchanged too.
 * provider → consumer: `offer`, then `invoice`s, `paid` for each promise exchanged at the hub,
 * `stopped` / `resumed` when it stops and resumes serving, `error` for a promise it refused.
 * Invoices and promises are the SDK's wire messages (`encodeMessage`, `decodeMessage`).
 */
export const PROTOCOL_VERSION = 1;

/** The longest control line either side accepts, in bytes. */
export const MAX_LINE = 64 * 1024;

const address = z.string().regex(/^0x[0-9a-fA-F]{40}$/);
const bytes32 = z.string().regex(/^0x[0-9a-fA-F]{64}$/);
const amount = z.string().regex(/^(0|[1-9][0-9]{0,77})$/);

/** The consumer's first message. */
export const helloSchema = z.strictObject({
  type: z.literal('hello'),
  version: z.literal(PROTOCOL_VERSION),
  consumer: address,
});

/** The provider's answer to `hello`: the terms, and the credentials of the data connections. */
export const offerSchema = z.strictObject({
  type: z.literal('offer'),
  version: z.literal(PROTOCOL_VERSION),
  /** SOCKS5 username / HTTP Basic user of this session's data connections. */
  session: z.string().regex(/^[0-9a-f]{32}$/),
  /** Their password. */
  token: z.string().regex(/^[0-9a-f]{64}$/),
  provider: address,
  hub: address,
  hubUrl: z.string().max(2048),
  chainId: z.number().int().positive(),
  agreementId: bytes32,
  prices: z.strictObject({ perMinute: amount, perGiB: amount }),
  /** An invoice at least this often while something is due. */
  intervalMs: z.number().int().positive(),
  /** How long an invoice may stay unpaid before the provider stops serving. */
  graceMs: z.number().int().nonnegative(),
});

export const controlSchemas = {
  hello: helloSchema,
  offer: offerSchema,
  invoice: z.strictObject({ type: z.literal('invoice'), invoice: z.unknown() }),
  promise: z.strictObject({ type: z.literal('promise'), promise: z.unknown() }),
  paid: z.strictObject({ type: z.literal('paid'), total: amount, hubPromise: z.unknown() }),
  stopped: z.strictObject({ type: z.literal('stopped'), unpaidInvoices: z.number().int() }),
  resumed: z.strictObject({ type: z.literal('resumed') }),
  error: z.strictObject({ type: z.literal('error'), code: z.string().max(64), message: z.string().max(4096) }),
  refused: z.strictObject({ type: z.literal('refused'), code: z.string().max(64), message: z.string().max(4096) }),
  /** The consumer is leaving: the provider invoices what is due now and answers `bye` when nothing is. */
  bye: z.strictObject({ type: z.literal('bye') }),
} as const;

export type ControlName = keyof typeof controlSchemas;
export type ControlMessage<N extends ControlName> = z.infer<(typeof controlSchemas)[N]>;
export type Offer = ControlMessage<'offer'>;

/**
 * Parses one control line into one of the `expected` messages.
 *
 * @throws {TunnelError} `MALFORMED_MESSAGE`, naming the offending field.
 * @example
 * const message = parseControl(line, ['invoice', 'paid']);
 */
export function parseControl<N extends ControlName>(line: string, expected: readonly N[]): ControlMessage<N> {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    throw new TunnelError('MALFORMED_MESSAGE', 'A control line is not JSON', line.slice(0, 200));
  }
  const type = (json as { type?: unknown } | null)?.type;
  if (typeof type !== 'string' || !(expected as readonly string[]).includes(type)) {
    throw new TunnelError(
      'MALFORMED_MESSAGE',
      `Unexpected control message ${JSON.stringify(type)}`,
      `Expected one of ${expected.join(', ')}.`,
    );
  }
  const result = controlSchemas[type as N].safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new TunnelError(
      'MALFORMED_MESSAGE',
      `Malformed ${type} message: ${wireIssuePath(issue) || '(root)'}: ${issue.message}`,
    );
  }
  return result.data as ControlMessage<N>;
}

/**
 * Splits a socket's text into lines and hands each to `onLine`; a line longer than {@link MAX_LINE}
 * calls `onError`.
 *
 * @example
 * socket.on('data', lineReader((line) => handle(line), (error) => socket.destroy(error)));
 */
export function lineReader(onLine: (line: string) => void, onError: (error: TunnelError) => void) {
  let buffer = '';
  return (chunk: Buffer | string) => {
    buffer += chunk.toString();
    let index = buffer.indexOf('\n');
    while (index >= 0) {
      const line = buffer.slice(0, index).trim();
      buffer = buffer.slice(index + 1);
      if (line) onLine(line);
      index = buffer.indexOf('\n');
    }
    if (buffer.length > MAX_LINE) {
      buffer = '';
      onError(new TunnelError('MALFORMED_MESSAGE', `A control line is longer than ${MAX_LINE} bytes`));
    }
  };
}

/** One control message as a line. */
export function controlLine(message: Record<string, unknown>): string {
  return `${JSON.stringify(message)}\n`;
}
