import { decodePaymentRequiredHeader } from '@x402/core/http';
import { decodePaymentResponseHeader, wrapFetchWithPayment, x402Client } from '@x402/fetch';
import { ChitClientScheme, type ChitClientSchemeOptions, type HeldAuthorization } from './client.js';
import { CHIT_SCHEME, parseAmount } from './wire.js';

/** A `fetch` that pays chit 402s; `scheme` is the buyer's {@link ChitClientScheme}. */
export type ChitFetch = ((input: RequestInfo | URL, init?: RequestInit) => Promise<Response>) & {
  scheme: ChitClientScheme;
};

const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);

/**
 * Wraps `fetch` with `@x402/fetch`'s `wrapFetchWithPayment` and an `x402Client` that pays with the
 * chit scheme (spend controls allow the hub's token on the hub's chain; the scheme enforces the
 * buyer's prices and limits). Requests to one seller agreement run one at a time: each paid response's
 * body is read and its bytes counted into the agreement's meter (after a successful PAYMENT-RESPONSE)
 * before the next payment of the agreement is signed. The response is returned with the same body.
 *
 * A refusal before signing rejects with the scheme's typed error ({@link RequirementsRejectedError},
 * {@link SpendingLimitError}); a paid retry the seller still refuses is returned as its 402.
 *
 * @example
 * const pay = chitFetch(fetch, { ledger, token, maxPricePerRequest: 1000n, maxPricePerMiB: 10n ** 15n, store });
 * const response = await pay('https://api.example.com/weather');
 * console.log(await response.json());
 */
export function chitFetch(
  fetch: typeof globalThis.fetch,
  options: ChitClientScheme | ChitClientSchemeOptions,
): ChitFetch {
  const scheme = options instanceof ChitClientScheme ? options : new ChitClientScheme(options);
  const pay = async (input: RequestInfo | URL, init?: RequestInit, caughtUp = false): Promise<Response> => {
    const call: { held?: HeldAuthorization; error?: unknown } = {};
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
      .setSpendControls({ allowedAssets: [{ network: scheme.network, asset: scheme.token }] });
    const paidFetch = wrapFetchWithPayment(fetch, client);
    try {
      let response: Response;
      try {
        response = await paidFetch(input, init);
      } catch (error) {
        throw call.error ?? error;
      }
      const held = call.held;
      // The seller credited the payment sent last but its response never arrived: catch up once, and
      // pay this request on a fresh 402.
      if (held && response.status === 402 && !caughtUp) {
        const meter = sellerMeter(response);
        if (meter && (await scheme.resync(held.agreement, meter))) {
          held.release();
          call.held = undefined;
          return pay(input, init, true);
        }
      }
      const header = response.headers.get('PAYMENT-RESPONSE');
      if (!held || !header || response.status >= 400) return response;
      const settled = decodePaymentResponseHeader(header);
      if (!settled.success) return response;
      const body = new Uint8Array(await response.arrayBuffer());
      await scheme.recordResponse(held, body.byteLength);
      const copy = new Response(NULL_BODY_STATUS.has(response.status) ? null : body, {
        status: response.status,
        statusText: response.statusText,
        headers: response.headers,
      });
      Object.defineProperty(copy, 'url', { value: response.url });
      return copy;
    } finally {
      call.held?.release();
    }
  };
  return Object.assign(pay, { scheme });
}

/** The seller's meter in a `WRONG_TOTAL` 402 (`extra.meter` of its chit requirement), if there is one. */
function sellerMeter(response: Response): { requests: bigint; bytes: bigint; credited: bigint } | undefined {
  const header = response.headers.get('PAYMENT-REQUIRED');
  if (!header) return undefined;
  try {
    const required = decodePaymentRequiredHeader(header);
    if (required.error !== 'WRONG_TOTAL') return undefined;
    const meter = required.accepts.find((entry) => entry.scheme === CHIT_SCHEME)?.extra?.meter as
      | { requests?: unknown; bytes?: unknown; credited?: unknown }
      | undefined;
    const [requests, bytes, credited] = [meter?.requests, meter?.bytes, meter?.credited].map(parseAmount);
    return requests !== undefined && bytes !== undefined && credited !== undefined
      ? { requests, bytes, credited }
      : undefined;
  } catch {
    return undefined;
  }
}
