/**
 * A small, protocol-faithful hub for the SDK's session tests: an HTTP server on 127.0.0.1 implementing
 * `GET /v1/info`, `POST /v1/exchange`, `POST /v1/reveal` and `POST /v1/recovery` exactly as
 * docs/protocol.md states them (strict decoding, real signature checks, a real operator key, the
 * preimage box opened with the operator key, atomic and idempotent exchanges), plus a minimal
 * settlement quote and settlement queue. Books live in memory; there is no chain.
 *
 * It exists only because the hub service (hub/) does not yet: the end-to-end suite will replace it with
 * the real hub, and it must not grow into a second implementation.
 *
 *   const hub = await startReferenceHub();
 *   hub.deposit(consumer.address, 10n ** 18n);
 *   after(() => hub.stop());
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { secp256k1 } from '@noble/curves/secp256k1';
import { type Address, bytesToHex, getAddress, type Hex, hexToBytes, isAddress } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import {
  decodeMessage,
  encodeMessage,
  hashlockOf,
  MalformedMessageError,
  Mutex,
  openPreimage,
  type SignedHubPromise,
  signHubPromise,
  verifyConsumerPromise,
  verifyRecoveryRequest,
  verifySettlementAuthorization,
} from '../../src/index.js';

/** Options of {@link startReferenceHub}. */
export interface ReferenceHubOptions {
  /** The Hub contract address the hub signs for. */
  hub?: Address;
  chainId?: number;
  /** The operator's private key. */
  operatorKey?: Hex;
  /** Hub fee in basis points. */
  fee?: number;
  /** Relayer fee quoted for settlements. */
  relayerFee?: bigint;
  /** Milliseconds since the epoch, for STALE_REQUEST and quotes. */
  clock?: () => number;
}

interface ProviderBooks {
  total: bigint;
  latest: SignedHubPromise | null;
  /** R of every exchanged hashlock, opened from the box. */
  preimages: Map<Hex, Hex>;
  settled: bigint;
}

/** A running reference hub. */
export interface ReferenceHub {
  url: string;
  hub: Address;
  chainId: number;
  operator: Address;
  operatorKey: Hex;
  publicKey: Hex;
  /** Opens or tops up a consumer channel. */
  deposit(consumer: Address, amount: bigint): void;
  /** What the hub credited from a consumer's promises. */
  credited(consumer: Address): bigint;
  /** The provider's hub promise total. */
  providerTotal(provider: Address): bigint;
  /** Every request received, as `METHOD /path`. */
  requests: string[];
  /** The next `times` requests to `path` get this error answer, without being processed. */
  failNext(path: string, status: number, code: string, times?: number, headers?: Record<string, string>): void;
  /** The next request to `path` is processed, but its answer is lost (the connection is cut). */
  dropNextAnswer(path: string): void;
  /** Marks every queued settlement confirmed and the providers settled. */
  confirmSettlements(): void;
  stop(): Promise<void>;
}

class Refusal extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

const DEFAULT_OPERATOR_KEY = `0x${'0a'.repeat(32)}` as Hex;

/**
 * Starts a reference hub on a free port of 127.0.0.1.
 *
 * @example
 * const hub = await startReferenceHub({ fee: 100 });
 */
export async function startReferenceHub(options: ReferenceHubOptions = {}): Promise<ReferenceHub> {
  const hub = getAddress(options.hub ?? '0x4859E602e6ffac40ef337bB9B9Df6a4D9CF43b51');
  const chainId = options.chainId ?? 31337;
  const operatorKey = options.operatorKey ?? DEFAULT_OPERATOR_KEY;
  const operator = privateKeyToAccount(operatorKey);
  const publicKey = bytesToHex(secp256k1.getPublicKey(hexToBytes(operatorKey), true));
  const fee = options.fee ?? 100;
  const clock = options.clock ?? Date.now;
  const mutex = new Mutex();

  const consumers = new Map<string, { balance: bigint; highestSigned: bigint; credited: bigint }>();
  const agreements = new Map<string, bigint>();
  const providers = new Map<string, ProviderBooks>();
  const answers = new Map<string, unknown>();
  const settlements = new Map<string, { provider: string; total: bigint; status: string }>();
  const failures = new Map<string, { status: number; code: string; times: number; headers: Record<string, string> }>();
  const drops = new Set<string>();
  const requests: string[] = [];

  const books = (provider: string): ProviderBooks => {
    let entry = providers.get(provider.toLowerCase());
    if (!entry) {
      entry = { total: 0n, latest: null, preimages: new Map(), settled: 0n };
      providers.set(provider.toLowerCase(), entry);
    }
    return entry;
  };

  const decode = <N extends Parameters<typeof decodeMessage>[0]>(name: N, json: unknown) => {
    try {
      return decodeMessage(name, json);
    } catch (error) {
      if (error instanceof MalformedMessageError) {
        throw new Refusal(400, 'MALFORMED', error.shortMessage, { path: error.path });
      }
      throw error;
    }
  };

  const checkScope = (message: { hub: Address; chainId: number }) => {
    if (message.chainId !== chainId) throw new Refusal(400, 'WRONG_CHAIN', `This hub is on chain ${chainId}`);
    if (message.hub.toLowerCase() !== hub.toLowerCase()) throw new Refusal(400, 'WRONG_HUB', `This hub is ${hub}`);
  };

  const routes: Record<string, (body: unknown, query: URLSearchParams) => Promise<[number, unknown]>> = {
    'GET /v1/info': async () => [
      200,
      {
        hub,
        chainId,
        registry: '0x844D436EBeC2cC6cBF0355dD632Cde3E956d18ac',
        token: '0x46650c90AFDA1ac22bCaFf455efC18A6e692F222',
        operator: operator.address,
        publicKey,
        fee,
        pendingFee: null,
        stake: (10n ** 21n).toString(),
        freeFunds: '0',
        status: 'active',
        consumersPaused: false,
        version: 'reference-hub',
      },
    ],

    'POST /v1/exchange': (body) =>
      mutex.run(async () => {
        const request = decode('exchangeRequest', body);
        const promise = request.promise;
        checkScope(promise);
        if (!verifyConsumerPromise(promise)) {
          throw new Refusal(400, 'INVALID_SIGNATURE', `The promise is not signed by ${promise.consumer}`);
        }
        const channel = consumers.get(promise.consumer.toLowerCase());
        if (!channel) throw new Refusal(404, 'UNKNOWN_CONSUMER', `${promise.consumer} has no channel here`);
        const repeat = answers.get(promise.signature);
        if (repeat) return [200, repeat];
        const provider = books(promise.agreement.provider);
        // R comes with every exchange, in its box: the hub learns it before it signs, as the hub does.
        const preimage = openPreimage(operatorKey, request.encryptedPreimage);
        if (!preimage || hashlockOf(preimage) !== promise.hashlock) {
          throw new Refusal(400, 'MALFORMED', 'The encrypted preimage does not open to the R of the hashlock', {
            path: 'encryptedPreimage',
          });
        }
        const key = `${promise.agreement.provider.toLowerCase()}:${promise.agreement.id}`;
        const increment = promise.agreement.total - (agreements.get(key) ?? 0n);
        if (increment <= 0n) throw new Refusal(409, 'PROMISE_TOO_LOW', 'The promise adds nothing');
        const highestSigned = promise.total > channel.highestSigned ? promise.total : channel.highestSigned;
        if (channel.credited + increment > highestSigned || channel.credited + increment > channel.balance) {
          throw new Refusal(
            409,
            'OVERSPEND',
            `The consumer has promised ${channel.credited + increment} and holds ${channel.balance}`,
          );
        }
        const hubPromise = await signHubPromise(operator, {
          hub,
          chainId,
          provider: promise.agreement.provider,
          total: provider.total + increment,
          hashlock: promise.hashlock,
        });
        // Everything checked: apply at once.
        channel.highestSigned = highestSigned;
        channel.credited += increment;
        agreements.set(key, promise.agreement.total);
        provider.total = hubPromise.total;
        provider.latest = hubPromise;
        provider.preimages.set(promise.hashlock, preimage);
        const answer = { hubPromise: encodeMessage(hubPromise) };
        answers.set(promise.signature, answer);
        return [200, answer];
      }),

    'POST /v1/reveal': async (body) => {
      const reveal = decode('reveal', body);
      checkScope(reveal);
      const provider = books(reveal.provider);
      const hashlock = hashlockOf(reveal.preimage);
      if (!provider.preimages.has(hashlock)) {
        throw new Refusal(404, 'UNKNOWN_PREIMAGE', 'The preimage matches no hashlock of this provider');
      }
      return [200, { revealed: true }];
    },

    'POST /v1/recovery': async (body) => {
      const request = decode('recoveryRequest', body);
      checkScope(request);
      if (!verifyRecoveryRequest(request)) {
        throw new Refusal(400, 'INVALID_SIGNATURE', `The request is not signed by ${request.provider}`);
      }
      const now = BigInt(Math.floor(clock() / 1000));
      const skew = now > request.issuedAt ? now - request.issuedAt : request.issuedAt - now;
      if (skew > 300n) throw new Refusal(400, 'STALE_REQUEST', `issuedAt is ${skew} s off the hub's clock`);
      const provider = providers.get(request.provider.toLowerCase());
      if (!provider?.latest) throw new Refusal(404, 'UNKNOWN_PROVIDER', 'No promise for this provider');
      const reissued = await signHubPromise(operator, provider.latest);
      return [
        200,
        { hubPromise: encodeMessage(reissued), preimage: provider.preimages.get(provider.latest.hashlock) ?? null },
      ];
    },

    'GET /v1/quotes/settlement': async (_body, query) => {
      const address = query.get('provider') ?? '';
      if (!isAddress(address)) throw new Refusal(400, 'MALFORMED', 'provider', { path: 'provider' });
      const provider = books(address);
      const amount = provider.total - provider.settled;
      return [
        200,
        {
          provider: getAddress(address),
          amount: amount.toString(),
          hubFee: ((amount * BigInt(fee)) / 10_000n).toString(),
          relayerFee: (options.relayerFee ?? 0n).toString(),
          // Like the hub with no RELAYER_KEY: its relayer is the operator's account.
          relayer: operator.address,
          gasPrice: '1000000000',
          validUntil: String(Math.floor(clock() / 1000) + 60),
        },
      ];
    },

    'POST /v1/settlements': async (body) => {
      const { provider: address, relayerFee, authorization } = body as Record<string, string>;
      if (
        !isAddress(address ?? '') ||
        !/^\d+$/.test(relayerFee ?? '') ||
        !/^0x[0-9a-f]{130}$/i.test(authorization ?? '')
      ) {
        throw new Refusal(400, 'MALFORMED', 'Bad settlement request', { path: '' });
      }
      const provider = providers.get(address.toLowerCase());
      if (!provider?.latest) throw new Refusal(404, 'UNKNOWN_PROVIDER', 'No promise for this provider');
      if (!verifySettlementAuthorization(provider.latest, BigInt(relayerFee), operator.address, authorization as Hex)) {
        throw new Refusal(
          400,
          'INVALID_SIGNATURE',
          'The authorization is not the provider’s for its latest promise and this hub’s relayer',
        );
      }
      const id = `settlement-${settlements.size + 1}`;
      settlements.set(id, { provider: address.toLowerCase(), total: provider.latest.total, status: 'queued' });
      return [202, { id, status: 'queued' }];
    },
  };

  const answer = (response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    response.writeHead(status, { 'content-type': 'application/json', ...headers });
    response.end(JSON.stringify(body));
  };

  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    const url = new URL(request.url ?? '/', 'http://127.0.0.1');
    const route = `${request.method} ${url.pathname}`;
    requests.push(route);
    const failure = failures.get(url.pathname);
    if (failure) {
      if (--failure.times === 0) failures.delete(url.pathname);
      return answer(response, failure.status, { code: failure.code, message: 'injected' }, failure.headers);
    }
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    try {
      let body: unknown;
      if (chunks.length > 0) {
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          throw new Refusal(400, 'MALFORMED', 'The body is not JSON', { path: '' });
        }
      }
      const settlement = /^\/v1\/settlements\/([^/]+)$/.exec(url.pathname);
      let result: [number, unknown];
      if (request.method === 'GET' && settlement) {
        const entry = settlements.get(decodeURIComponent(settlement[1]!));
        if (!entry) throw new Refusal(404, 'NOT_FOUND', 'No such settlement');
        result = [200, { id: settlement[1], kind: 'provider', status: entry.status, txHash: null, error: null }];
      } else {
        const handler = routes[route];
        if (!handler) throw new Refusal(404, 'NOT_FOUND', `No route ${route}`);
        result = await handler(body, url.searchParams);
      }
      if (drops.delete(url.pathname)) {
        request.socket.destroy();
        return;
      }
      answer(response, result[0], result[1]);
    } catch (error) {
      if (error instanceof Refusal) {
        return answer(response, error.status, {
          code: error.code,
          message: error.message,
          details: error.details ?? {},
        });
      }
      answer(response, 500, { code: 'INTERNAL', message: String(error) });
    }
  };

  const server = createServer((request, response) => {
    void handle(request, response);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    hub,
    chainId,
    operator: operator.address,
    operatorKey,
    publicKey,
    deposit(consumer, amount) {
      const channel = consumers.get(consumer.toLowerCase());
      if (channel) channel.balance += amount;
      else consumers.set(consumer.toLowerCase(), { balance: amount, highestSigned: 0n, credited: 0n });
    },
    credited: (consumer) => consumers.get(consumer.toLowerCase())?.credited ?? 0n,
    providerTotal: (provider) => providers.get(provider.toLowerCase())?.total ?? 0n,
    requests,
    failNext(path, status, code, times = 1, headers = {}) {
      failures.set(path, { status, code, times, headers });
    },
    dropNextAnswer(path) {
      drops.add(path);
    },
    confirmSettlements() {
      for (const entry of settlements.values()) {
        if (entry.status !== 'queued') continue;
        entry.status = 'confirmed';
        books(entry.provider).settled = entry.total;
      }
    },
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
