import { type HTTPProcessResult, type HTTPRequestContext, x402HTTPResourceServer } from '@x402/core/server';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { NodeHttpAdapter } from './http-adapter.js';
import type { ChitPaywall } from './paywall.js';

type Verified = Extract<HTTPProcessResult, { type: 'payment-verified' }>;

/** What a paid request carries from `onRequest` to `onSend`. */
interface PaidRequest {
  context: HTTPRequestContext;
  verified: Verified;
}

/**
 * x402 for a Fastify app, with the chit scheme: what `paymentMiddleware` of `@x402/express` or
 * `@x402/hono` does, as Fastify hooks (x402 ships no Fastify middleware). An unpaid request to a paid
 * route is answered 402 before any handler; a paid one reaches its handler, and its answer is sent once
 * the payment is settled (the promise exchanged at the hub), with PAYMENT-RESPONSE; an answer of 400 or
 * more is sent as it is and not charged; a payment the hub refuses at settlement turns the answer into
 * a 402, its body withheld.
 *
 * @example
 * const paywall = await chitPaywall({ hubUrl, ledger, secret, routes: { 'GET /weather': { pricePerRequest } } });
 * await chitFastify(app, paywall);
 * app.get('/weather', async () => ({ sunny: true }));
 */
export async function chitFastify(
  app: FastifyInstance,
  paywall: Pick<ChitPaywall, 'routes' | 'server'>,
): Promise<void> {
  const http = new x402HTTPResourceServer(paywall.server, paywall.routes);
  await http.initialize();
  const paid = new WeakMap<FastifyRequest, PaidRequest>();

  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    const adapter = new NodeHttpAdapter(request, () => `${request.protocol}://${request.host}`);
    const context: HTTPRequestContext = {
      adapter,
      path: adapter.getPath(),
      method: request.method,
      paymentHeader: adapter.getHeader('payment-signature') ?? adapter.getHeader('x-payment'),
    };
    if (!http.requiresPayment(context)) return;
    const result = await http.processHTTPRequest(context);
    if (result.type === 'payment-error') {
      const { response } = result;
      return reply
        .code(response.status)
        .headers(response.headers)
        .send(response.isHtml ? String(response.body ?? '') : (response.body ?? {}));
    }
    if (result.type === 'payment-verified') paid.set(request, { context, verified: result });
  });

  app.addHook('onError', async (request: FastifyRequest, _reply: FastifyReply, error: Error) => {
    const entry = paid.get(request);
    if (!entry) return;
    paid.delete(request);
    await entry.verified.cancellationDispatcher.cancel({ reason: 'handler_threw', error });
  });

  app.addHook('onSend', async (request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
    const entry = paid.get(request);
    if (!entry) return payload;
    paid.delete(request);
    const { verified } = entry;
    if (reply.statusCode >= 400) {
      await verified.cancellationDispatcher.cancel({ reason: 'handler_failed', responseStatus: reply.statusCode });
      return payload;
    }
    const body =
      payload === null || payload === undefined
        ? Buffer.alloc(0)
        : Buffer.isBuffer(payload)
          ? payload
          : typeof payload === 'string'
            ? Buffer.from(payload)
            : await collect(payload as AsyncIterable<Buffer | string>);
    const responseHeaders: Record<string, string> = {};
    for (const [name, value] of Object.entries(reply.getHeaders())) {
      if (value !== undefined) responseHeaders[name] = String(value);
    }
    const settled = await http.processSettlement(
      verified.paymentPayload,
      verified.paymentRequirements,
      verified.declaredExtensions,
      { request: entry.context, responseBody: body, responseHeaders },
    );
    if (!settled.success) {
      const { response } = settled;
      reply.code(response.status).headers(response.headers);
      return response.isHtml ? String(response.body ?? '') : JSON.stringify(response.body ?? {});
    }
    reply.headers(settled.headers);
    const cache = reply.getHeader('cache-control');
    reply.header('cache-control', cache ? `private, ${cache}` : 'private');
    return body;
  });
}

async function collect(stream: AsyncIterable<Buffer | string>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  return Buffer.concat(chunks);
}
