import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { HubHttp, HubHttpAnswer } from '../hub-client/transport.js';

/** Options of {@link nodeHubHttp}. */
export interface NodeHubHttpOptions {
  /** Connections kept open per hub, at most. Default: as many as requests at once. */
  maxSockets?: number;
}

/**
 * A {@link HubHttp} on node:http and node:https with kept-alive connections, for a HubClient in Node
 * (`new HubClient({ url, http: nodeHubHttp() })`): a request to a hub costs a fraction of the CPU of
 * Node's `fetch` (undici's web streams and Response objects). Call `close()` to drop the idle
 * connections; they are also dropped by the hub's keep-alive timeout.
 *
 * @example
 * const hub = new HubClient({ url: 'https://hub.example', http: nodeHubHttp() });
 */
export function nodeHubHttp(options: NodeHubHttpOptions = {}): HubHttp & { close(): void } {
  const agents = {
    http: new HttpAgent({ keepAlive: true, maxSockets: options.maxSockets }),
    https: new HttpsAgent({ keepAlive: true, maxSockets: options.maxSockets }),
  };
  const send: HubHttp = ({ method, url, headers, body, signal }) =>
    new Promise<HubHttpAnswer>((resolve, reject) => {
      const secure = url.startsWith('https:');
      const outgoing = (secure ? httpsRequest : httpRequest)(
        url,
        {
          method,
          headers: body === undefined ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) },
          agent: secure ? agents.https : agents.http,
          signal,
        },
        (incoming: IncomingMessage) => {
          const chunks: Buffer[] = [];
          incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
          incoming.on('error', reject);
          incoming.on('close', () => {
            if (!incoming.complete) reject(new Error(`the answer to ${method} ${url} was cut off`));
          });
          incoming.on('end', () => {
            const received = incoming.headers;
            resolve({
              status: incoming.statusCode ?? 0,
              text: Buffer.concat(chunks).toString('utf8'),
              headers: {
                get: (name) => {
                  const value = received[name.toLowerCase()];
                  return value === undefined ? null : Array.isArray(value) ? value.join(', ') : value;
                },
              },
            });
          });
        },
      );
      outgoing.on('error', reject);
      outgoing.end(body);
    });
  return Object.assign(send, {
    close: () => {
      agents.http.destroy();
      agents.https.destroy();
    },
  });
}
