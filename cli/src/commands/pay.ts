import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { Command, Option } from 'commander';
import { type CliContext, handler } from '../context.js';
import { CliError } from '../errors.js';
import { formatAmount, parseAmount } from '../output.js';
import { consumerLedger, loadX402 } from '../x402-module.js';

interface PayOptions {
  request: string;
  header: string[];
  data?: string;
  maxPricePerRequest: string;
  maxPricePerMib: string;
  maxPerHour?: string;
  output?: string;
  include?: boolean;
}

/**
 * `chit pay URL`: a curl-like request to an API sold for Chit payments (x402, the chit scheme), paid
 * from the identity's channel at the hub.
 *
 * @example
 * program.addCommand(payCommand());
 */
export function payCommand(): Command {
  return new Command('pay')
    .description('Consumer: make an HTTP request to an API sold for Chit payments, and pay for it')
    .argument('<url>', 'the URL to request')
    .addOption(new Option('-X, --request <method>', 'the HTTP method').default('GET'))
    .addOption(
      new Option('-H, --header <header...>', 'a request header, "Name: value" (repeatable)').default([] as string[]),
    )
    .option('-d, --data <body>', 'the request body (a POST unless -X says otherwise)')
    .requiredOption('--max-price-per-request <tokens>', 'the most one request may cost; a dearer seller is not paid')
    .addOption(new Option('--max-price-per-mib <tokens>', 'the most a MiB of response may cost').default('0'))
    .option('--max-per-hour <tokens>', 'the most this identity pays in any hour (kept in the store)')
    .option('-o, --output <file>', 'write the response body to a file instead of stdout')
    .option('-i, --include', 'print the status line and response headers before the body')
    .addHelpText(
      'after',
      '\nThe identity pays from its channel at the hub (`chit deposit` first). Its cumulative total and\n' +
        'what it owes each seller are kept in the store (--store): keep it, or later promises are refused.\n' +
        'What was paid goes to stderr; the body to stdout. Exit status 1 when the seller still refuses.',
    )
    .action(handler(runPay));
}

async function runPay(ctx: CliContext, url: string, options: PayOptions): Promise<void> {
  const { chitFetch } = await loadX402();
  const token = await ctx.token();
  const amount = (text: string, what: string, allowZero = false) => {
    try {
      return parseAmount(text, token.decimals, { allowZero });
    } catch (error) {
      throw new CliError('BAD_AMOUNT', `${what}: ${(error as Error).message}`, `Give ${what} in tokens, such as 0.01.`);
    }
  };
  const { ledger } = await consumerLedger(ctx);
  const pay = chitFetch(
    fetch,
    {
      ledger,
      token: token.address,
      maxPricePerRequest: amount(options.maxPricePerRequest, '--max-price-per-request'),
      maxPricePerMiB: amount(options.maxPricePerMib, '--max-price-per-mib', true),
      ...(options.maxPerHour ? { limits: { perHour: amount(options.maxPerHour, '--max-per-hour') } } : {}),
      store: ctx.store(),
    },
    { stream: true },
  );
  const headers = new Headers();
  for (const header of options.header) {
    const colon = header.indexOf(':');
    if (colon < 1)
      throw new CliError(
        'BAD_HEADER',
        `-H ${header}: expected "Name: value"`,
        'Example: -H "Accept: application/json"',
      );
    headers.append(header.slice(0, colon).trim(), header.slice(colon + 1).trim());
  }
  const method = options.data !== undefined && options.request === 'GET' ? 'POST' : options.request.toUpperCase();
  const init = { method, headers, ...(options.data !== undefined ? { body: options.data } : {}) };
  const format = (value: bigint) => `${formatAmount(value, token.decimals)} ${token.symbol}`;
  let response: Response;
  try {
    response = await pay(url, init);
  } catch (error) {
    if (error instanceof TypeError && /fetch failed/.test(error.message)) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new CliError(
        'SELLER_UNREACHABLE',
        `No answer from ${new URL(url).origin}: ${cause?.code ?? cause?.message ?? error.message}`,
        'Check the URL, and that the seller is up. Nothing was paid for it.',
      );
    }
    const { code, allowed, attempted } = error as { code?: string; allowed?: bigint; attempted?: bigint };
    if (code === 'PRICE_TOO_HIGH') {
      const asked = await askedPrices(url, init);
      throw new CliError(
        'PRICE_TOO_HIGH',
        `The seller asks ${asked ? `${format(asked.perRequest)} per request and ${format(asked.perMiB)} per MiB` : 'more than you allow'}; you allow ${options.maxPricePerRequest} per request and ${options.maxPricePerMib} per MiB`,
        'Nothing was signed. Raise --max-price-per-request or --max-price-per-mib to pay this seller.',
      );
    }
    if (code === 'SPENDING_LIMIT' && allowed !== undefined && attempted !== undefined) {
      throw new CliError(
        'SPENDING_LIMIT',
        `This payment would make the last hour's spending ${format(attempted)}, over --max-per-hour ${format(allowed)}`,
        'Nothing was signed. Wait, or raise --max-per-hour.',
      );
    }
    throw error;
  }
  // What the seller was paid for this request: the increment its PAYMENT-RESPONSE states (a promise
  // sent again for an earlier unanswered request is paid once, whichever request it answers).
  const paid = settledAmount(response) ?? 0n;
  const refusal = response.status === 402 ? paymentRefusal(response) : undefined;
  ctx.out.progress(
    `${response.status} ${response.statusText}: paid ${formatAmount(paid, token.decimals)} ${token.symbol}` +
      (refusal ? ` (the seller refused: ${refusal})` : ''),
  );
  if (options.include) {
    process.stdout.write(`HTTP ${response.status} ${response.statusText}\n`);
    response.headers.forEach((value, name) => {
      process.stdout.write(`${name}: ${value}\n`);
    });
    process.stdout.write('\n');
  }
  // The body as it arrives (a gateway streams it: server-sent events, large downloads); its bytes are
  // counted for the next payment once it has all come.
  const body = response.body ? Readable.fromWeb(response.body as NodeReadableStream<Uint8Array>) : Readable.from([]);
  if (options.output) await pipeline(body, createWriteStream(options.output));
  else
    for await (const chunk of body) {
      if (!process.stdout.write(chunk)) await once(process.stdout, 'drain');
    }
  if (response.status === 402) {
    throw new CliError(
      'PAYMENT_REFUSED',
      `The seller answered 402${refusal ? `: ${refusal}` : ''}`,
      'Check the identity’s channel (`chit balance`) and your price limits, then try again.',
    );
  }
}

/** The amount of a successful PAYMENT-RESPONSE (base64 JSON), if there is one. */
function settledAmount(response: Response): bigint | undefined {
  const header = response.headers.get('payment-response');
  if (!header) return undefined;
  try {
    const settled = JSON.parse(Buffer.from(header, 'base64').toString('utf8')) as {
      success?: boolean;
      amount?: string;
    };
    return settled.success && settled.amount && /^\d+$/.test(settled.amount) ? BigInt(settled.amount) : undefined;
  } catch {
    return undefined;
  }
}

/** The prices of the seller's 402 (its first chit requirement), read without paying. */
async function askedPrices(
  url: string,
  init: RequestInit,
): Promise<{ perRequest: bigint; perMiB: bigint } | undefined> {
  try {
    const header = (await fetch(url, init)).headers.get('payment-required');
    if (!header) return undefined;
    const required = JSON.parse(Buffer.from(header, 'base64').toString('utf8')) as {
      accepts?: { scheme?: string; amount?: string; extra?: { pricePerMiB?: string } }[];
    };
    const chit = required.accepts?.find((entry) => entry.scheme === 'chit');
    return chit?.amount
      ? { perRequest: BigInt(chit.amount), perMiB: BigInt(chit.extra?.pricePerMiB ?? '0') }
      : undefined;
  } catch {
    return undefined;
  }
}

/** Why a 402 was given, from its PAYMENT-REQUIRED or PAYMENT-RESPONSE header (base64 JSON). */
function paymentRefusal(response: Response): string | undefined {
  for (const [name, field] of [
    ['payment-required', 'error'],
    ['payment-response', 'errorReason'],
  ] as const) {
    const header = response.headers.get(name);
    if (!header) continue;
    try {
      const decoded = JSON.parse(Buffer.from(header, 'base64').toString('utf8')) as Record<string, unknown>;
      if (typeof decoded[field] === 'string') return decoded[field];
    } catch {}
  }
  return undefined;
}
