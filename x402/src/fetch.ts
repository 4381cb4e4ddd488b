import { decodePaymentRequiredHeader, encodePaymentSignatureHeader } from '@x402/core/http';
import type { PaymentPayload, PaymentRequired, PaymentRequirements } from '@x402/core/types';
import { decodePaymentResponseHeader, wrapFetchWithPayment, x402Client } from '@x402/fetch';
import { ChitClientScheme, type ChitClientSchemeOptions, type HeldAuthorization } from './client.js';
import { RequirementsRejectedError } from './errors.js';
import { CHIT_SCHEME, decodeHeader, encodeHeader, parseAmount, readInvoice } from './wire.js';

/** A `fetch` that pays chit 402s; `scheme` is the buyer's {@link ChitClientScheme}. */
export type ChitFetch = ((input: RequestInfo | URL, init?: RequestInit) => Promise<Response>) & {
  scheme: ChitClientScheme;
};

const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);

/** The seller's 402 errors that say a payment's invoice is not its own: the promise was never exchanged. */
const NOT_ITS_INVOICE = new Set(['UNKNOWN_INVOICE', 'HASHLOCK_MISMATCH']);

/** How {@link chitFetch} hands back paid responses. */
export interface ChitFetchOptions {
  /**
   * Hand back each paid response's body as it arrives (server-sent events, a large download) instead of
   * reading it whole first. Its bytes are counted into the agreement's meter when it ends; until it ends
   * or is cancelled, the agreement's next payment waits, so read or cancel every paid body. A body cut
   * off or cancelled is not counted here; the seller meters the bytes it relayed, and the next payment
   * catches up with its meter (up to `maxUnreceivedBytes`). Default false.
   */
  stream?: boolean;
}

/** What a request paid last, its invoice replaced by the seller's `nextInvoice`: the next one's payment. */
type Prepaid = Omit<PaymentPayload, 'payload'>;

/**
 * Wraps `fetch` with `@x402/fetch`'s `wrapFetchWithPayment` and an `x402Client` that pays with the
 * chit scheme (spend controls allow the hub's token on the hub's chain; the scheme enforces the
 * buyer's prices and limits). Requests to one seller agreement run one at a time: each paid response's
 * body is read and its bytes counted into the agreement's meter (after a successful PAYMENT-RESPONSE)
 * before the next payment of the agreement is signed. The response is returned with the same body: read
 * whole first, or with `{ stream: true }` as it arrives (the agreement's next payment then waits until
 * the body ends or is cancelled).
 *
 * After a paid response, the seller's next invoice (`extra.nextInvoice` of its PAYMENT-RESPONSE) is kept
 * for the same method and URL: the next such request, when its body can be sent twice (none, a string,
 * bytes, URLSearchParams), is paid at once (PAYMENT-SIGNATURE on the first send, one round trip) while
 * the invoice is valid. A 402 to it falls back to the two round trips: an invoice the seller does not
 * recognise is paid again with the same totals on the fresh 402's invoice, a lost response is caught up
 * as below, and nothing is paid twice.
 *
 * A refusal before signing rejects with the scheme's typed error ({@link RequirementsRejectedError},
 * {@link SpendingLimitError}); a paid retry the seller still refuses is returned as its 402.
 *
 * @example
 * const pay = chitFetch(fetch, { ledger, token, maxPricePerRequest: 1000n, maxPricePerMiB: 10n ** 15n, store });
 * const response = await pay('https://api.example.com/weather');
 * console.log(await response.json());
 * // Server-sent events from a seller, as they come:
 * const events = chitFetch(fetch, options, { stream: true });
 * for await (const chunk of (await events('https://api.example.com/stream')).body!) process.stdout.write(chunk);
 */
export function chitFetch(
  fetch: typeof globalThis.fetch,
  options: ChitClientScheme | ChitClientSchemeOptions,
  { stream = false }: ChitFetchOptions = {},
): ChitFetch {
  const scheme = options instanceof ChitClientScheme ? options : new ChitClientScheme(options);
  /** By request key (method and URL): the payment of its next request, from the seller's `nextInvoice`. */
  const prepaid = new Map<string, Prepaid>();

  /**
   * Counts a paid response into the meter and keeps the next invoice; the response with the same body.
   * `holding` is true when the response's body (streamed) now holds the agreement: it releases it.
   */
  const settle = async (
    key: string | undefined,
    held: HeldAuthorization,
    sent: Prepaid | undefined,
    response: Response,
  ): Promise<{ response: Response; holding: boolean }> => {
    const header = response.headers.get('PAYMENT-RESPONSE');
    if (!header || response.status >= 400) return { response, holding: false };
    const settled = decodeHeader(header, decodePaymentResponseHeader);
    if (!settled.success) return { response, holding: false };
    const next = readInvoice(settled.extra?.nextInvoice);
    if (key && sent && next) {
      prepaid.set(key, { ...sent, accepted: { ...sent.accepted, extra: { ...sent.accepted.extra, ...next } } });
    }
    if (stream && response.body && !NULL_BODY_STATUS.has(response.status)) {
      return { response: copyOf(response, countedBody(response.body, held)), holding: true };
    }
    const body = new Uint8Array(await response.arrayBuffer());
    await scheme.recordResponse(held, body.byteLength);
    return { response: copyOf(response, NULL_BODY_STATUS.has(response.status) ? null : body), holding: false };
  };

  /** The body as it arrives, counted into the meter when it ends; the agreement released when it ends or stops. */
  const countedBody = (source: ReadableStream<Uint8Array>, held: HeldAuthorization) => {
    const reader = source.getReader();
    let bytes = 0;
    return new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          const { done, value } = await reader.read();
          if (done) {
            await scheme.recordResponse(held, bytes);
            held.release();
            controller.close();
            return;
          }
          bytes += value.byteLength;
          controller.enqueue(value);
        } catch (error) {
          held.release();
          controller.error(error);
        }
      },
      async cancel(reason) {
        held.release();
        await reader.cancel(reason);
      },
    });
  };

  /**
   * A 402 to a payment: notes an invoice the seller disowned, and catches up with the seller's meter when
   * `resync` (once a request). True when it caught up (pay on a fresh 402).
   */
  const refusedPayment = async (held: HeldAuthorization, response: Response, resync: boolean): Promise<boolean> => {
    const required = paymentRequired(response);
    if (required?.error && NOT_ITS_INVOICE.has(required.error)) await scheme.refused(held);
    const meter = resync && required ? sellerMeter(required) : undefined;
    return meter !== undefined && (await scheme.resync(held.agreement, meter));
  };

  /** Pays the request at once with its kept invoice; undefined when it must go the two-round-trip way. */
  const payAhead = async (
    key: string,
    input: RequestInfo | URL,
    init: RequestInit | undefined,
  ): Promise<{ response?: Response; caughtUp: boolean } | undefined> => {
    const kept = prepaid.get(key);
    if (!kept) return undefined;
    prepaid.delete(key);
    const accepted: PaymentRequirements = { ...kept.accepted, extra: { ...kept.accepted.extra } };
    let held: HeldAuthorization;
    try {
      held = await scheme.authorize(accepted);
    } catch (error) {
      if (error instanceof RequirementsRejectedError && error.reason === 'INVOICE_EXPIRED') return undefined;
      throw error;
    }
    let holding = false;
    try {
      const sent: Prepaid = { ...kept, accepted };
      // The request's headers with the payment's; a URL is sent with them as it is (a Request built here
      // would be built again by fetch).
      const request = input instanceof Request ? new Request(input, init) : undefined;
      const headers = request?.headers ?? new Headers(init?.headers);
      headers.set(
        'PAYMENT-SIGNATURE',
        encodeHeader(
          { ...sent, payload: held.payload as unknown as Record<string, unknown> },
          encodePaymentSignatureHeader,
        ),
      );
      headers.set('Access-Control-Expose-Headers', 'PAYMENT-RESPONSE,X-PAYMENT-RESPONSE');
      const response = await (request ? fetch(request) : fetch(input, { ...init, headers }));
      if (response.status === 402) {
        await response.arrayBuffer().catch(() => undefined);
        return { caughtUp: await refusedPayment(held, response, true) };
      }
      const settled = await settle(key, held, sent, response);
      holding = settled.holding;
      return { response: settled.response, caughtUp: false };
    } finally {
      if (!holding) held.release();
    }
  };

  const pay = async (input: RequestInfo | URL, init?: RequestInit, caughtUp = false): Promise<Response> => {
    const key = requestKey(input, init);
    if (key && !caughtUp) {
      const ahead = await payAhead(key, input, init);
      if (ahead?.response) return ahead.response;
      // A 402 to the payment sent at once: the usual way, on a fresh 402.
      if (ahead) caughtUp = ahead.caughtUp;
    }
    const call: { held?: HeldAuthorization; error?: unknown; sent?: Prepaid } = {};
    const client = new x402Client()
      .register(scheme.network, {
        scheme: CHIT_SCHEME,
        async createPaymentPayload(x402Version, requirements) {
          call.held?.release(); // a second payload for the same request (x402's recovery retry)
          try {
            call.held = await scheme.authorize(requirements);
          } catch (error) {
            call.error = error;
            throw error;
          }
          return { x402Version, payload: call.held.payload as unknown as Record<string, unknown> };
        },
      })
      .onAfterPaymentCreation(async ({ paymentPayload }) => {
        const { payload: _, ...sent } = paymentPayload;
        call.sent = sent;
      })
      .setSpendControls({ allowedAssets: [{ network: scheme.network, asset: scheme.token }] });
    const paidFetch = wrapFetchWithPayment(fetch, client);
    let holding = false;
    try {
      let response: Response;
      try {
        response = await paidFetch(input, init);
      } catch (error) {
        throw call.error ?? error;
      }
      const held = call.held;
      if (!held) return response;
      if (response.status === 402) {
        // The seller credited the payment sent last but its response never arrived: catch up once, and
        // pay this request on a fresh 402.
        if (await refusedPayment(held, response, !caughtUp)) {
          held.release();
          call.held = undefined;
          return pay(input, init, true);
        }
        return response;
      }
      const settled = await settle(key, held, call.sent, response);
      holding = settled.holding;
      return settled.response;
    } finally {
      if (!holding) call.held?.release();
    }
  };
  return Object.assign(pay, { scheme });
}

/** `response` with another body (its status, headers and URL kept). */
function copyOf(response: Response, body: BodyInit | null): Response {
  const copy = new Response(body, {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  });
  Object.defineProperty(copy, 'url', { value: response.url });
  return copy;
}

/** The PAYMENT-REQUIRED of a 402, if it has a readable one. */
function paymentRequired(response: Response): PaymentRequired | undefined {
  const header = response.headers.get('PAYMENT-REQUIRED');
  if (!header) return undefined;
  try {
    return decodePaymentRequiredHeader(header);
  } catch {
    return undefined;
  }
}

/** The seller's meter in a `WRONG_TOTAL` 402 (`extra.meter` of its chit requirement), if there is one. */
function sellerMeter(required: PaymentRequired): { requests: bigint; bytes: bigint; credited: bigint } | undefined {
  if (required.error !== 'WRONG_TOTAL') return undefined;
  const meter = required.accepts.find((entry) => entry.scheme === CHIT_SCHEME)?.extra?.meter as
    | { requests?: unknown; bytes?: unknown; credited?: unknown }
    | undefined;
  const [requests, bytes, credited] = [meter?.requests, meter?.bytes, meter?.credited].map(parseAmount);
  return requests !== undefined && bytes !== undefined && credited !== undefined
    ? { requests, bytes, credited }
    : undefined;
}

/**
 * The key of a request whose next one may be paid at once (method and URL), or undefined when its body
 * cannot be sent twice (a stream, a Blob, FormData: the fallback to a 402 needs it again).
 */
function requestKey(input: RequestInfo | URL, init: RequestInit | undefined): string | undefined {
  const request = input instanceof Request ? input : undefined;
  if (request?.body) return undefined;
  const body = init?.body;
  const resendable =
    body === undefined ||
    body === null ||
    typeof body === 'string' ||
    body instanceof ArrayBuffer ||
    ArrayBuffer.isView(body) ||
    body instanceof URLSearchParams;
  if (!resendable) return undefined;
  const method = (init?.method ?? request?.method ?? 'GET').toUpperCase();
  return `${method} ${request ? request.url : absolute(String(input))}`;
}

/** A URL made absolute when it can be (a relative one is kept as it is: its page resolves it). */
function absolute(url: string): string {
  try {
    return new URL(url).href;
  } catch {
    return url;
  }
}
