import { randomBytes, timingSafeEqual } from 'node:crypto';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import {
  ChitError,
  decodeMessage,
  encodeMessage,
  type Prices,
  type ProviderLedger,
  ProviderSession,
  type SignedConsumerPromise,
  type Verifier,
} from '@chit/sdk';
import { type Address, getAddress, type Hex } from 'viem';
import { TunnelError } from './errors.js';
import {
  HandshakeReader,
  isPrivateAddress,
  parseConnectHead,
  SocksReply,
  socksReply,
  socksServerGreeting,
  socksServerRequest,
  type Target,
} from './handshake.js';
import { type ControlMessage, controlLine, lineReader, PROTOCOL_VERSION, parseControl } from './wire.js';

/** Options of {@link startTunnelProvider}. */
export interface TunnelProviderOptions {
  /** The provider's ledger at its hub (opened here if it is not yet); its store keeps the earnings. */
  ledger: ProviderLedger;
  /** The hub's service URL, stated in offers. */
  hubUrl: string;
  /** The price of a minute connected and of a GiB carried (both directions), in token base units. */
  prices: Prices;
  /** An invoice at least this often while something is due. Default 60 s. */
  intervalMs?: number;
  /** How long an invoice may stay unpaid before the consumer is cut off. Default two intervals. */
  graceMs?: number;
  /** Default 1080; 0 picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Let consumers reach loopback, private and link-local addresses (the provider's own network). Default false. */
  allowPrivateTargets?: boolean;
  /** Checks consumer signatures. Default: the JavaScript verifier (`nativeVerifier()` of `@chit/sdk/node` is faster). */
  verifier?: Verifier;
  /** What happens, for logs and status lines. */
  onEvent?: (event: TunnelProviderEvent) => void;
}

/** What a tunnel provider reports. */
export type TunnelProviderEvent =
  | { type: 'session'; session: string; consumer: Address; agreementId: Hex }
  | { type: 'invoice'; session: string; total: bigint }
  | { type: 'paid'; session: string; total: bigint }
  | { type: 'stopped'; session: string; unpaidInvoices: number }
  | { type: 'resumed'; session: string }
  | { type: 'closed'; session: string; up: number; down: number; paid: bigint }
  | { type: 'refused'; session: string; code: string; message: string }
  | { type: 'error'; session?: string; message: string };

/** A running tunnel provider. */
export interface TunnelProvider {
  /** `tcp://host:port`: what consumers give `chit connect`. */
  url: string;
  port: number;
  /** The live sessions: traffic carried and what was paid. */
  sessions(): { session: string; consumer: Address; agreementId: Hex; up: number; down: number; paid: bigint }[];
  /** Stops serving: closes every connection and session. The store keeps unpaid invoices for a restart. */
  close(): Promise<void>;
}

interface Live {
  id: string;
  token: Buffer;
  consumer: Address;
  session: ProviderSession;
  control: Socket;
  connections: Set<Socket>;
  up: number;
  down: number;
}

const HANDSHAKE_MS = 10_000;

/**
 * Sells bandwidth: one TCP port serving SOCKS5 (RFC 1928 CONNECT with RFC 1929 username/password)
 * and HTTP CONNECT (`Proxy-Authorization: Basic`), and the control channel (newline-delimited JSON,
 * see `wire.ts`) beside them. A consumer opens the control channel and says `hello`; the provider
 * answers with an offer (prices, invoice interval, grace, provider, hub) and the credentials of the
 * session's data connections. Each consumer session is a {@link ProviderSession}: bytes both ways on
 * all its data connections count, it invoices every interval, exchanges each promise at the hub
 * through the ledger, and after the grace without payment its data connections are closed and new
 * ones refused until it pays. Every invoice's R is in the ledger's store before the invoice leaves,
 * so a provider restarted on the same store is paid for invoices sent before the restart.
 *
 * @example
 * const provider = await startTunnelProvider({ ledger, hubUrl, prices: { perMinute: 10n ** 15n, perGiB: 10n ** 17n } });
 * console.log(`chit connect ${provider.url}`);
 */
export async function startTunnelProvider(options: TunnelProviderOptions): Promise<TunnelProvider> {
  const { ledger, prices } = options;
  const intervalMs = options.intervalMs ?? 60_000;
  if (!Number.isInteger(intervalMs) || intervalMs <= 0) {
    throw new TunnelError('OFFER_REFUSED', `intervalMs must be a positive integer, got ${intervalMs}`);
  }
  const graceRequested = options.graceMs ?? 2 * intervalMs;
  // The session stops at its Nth unpaid invoice, when the oldest of them is (N - 1) intervals old.
  const maxUnpaidInvoices = Math.max(1, Math.ceil(graceRequested / intervalMs)) + 1;
  const graceMs = (maxUnpaidInvoices - 1) * intervalMs;
  const emit = (event: TunnelProviderEvent) => options.onEvent?.(event);
  await ledger.open();
  const live = new Map<string, Live>();
  const sockets = new Set<Socket>();

  const closeLive = (entry: Live) => {
    if (live.get(entry.id) !== entry) return;
    live.delete(entry.id);
    entry.session.close();
    for (const socket of entry.connections) socket.destroy();
    entry.control.destroy();
    emit({ type: 'closed', session: entry.id, up: entry.up, down: entry.down, paid: entry.session.paid });
  };

  const onControl = async (socket: Socket, reader: HandshakeReader) => {
    const first = reader.release();
    let entry: Live | undefined;
    let chain = Promise.resolve();
    const fail = (error: unknown) => {
      emit({ type: 'error', ...(entry ? { session: entry.id } : {}), message: messageOf(error) });
      socket.destroy();
    };
    const timer = setTimeout(() => fail(new TunnelError('NO_ANSWER', 'No hello in time')), HANDSHAKE_MS);
    const handle = async (line: string) => {
      if (!entry) {
        clearTimeout(timer);
        entry = await open(socket, parseControl(line, ['hello']));
        return;
      }
      const message = parseControl(line, ['promise', 'refused', 'bye']);
      if (message.type === 'bye') {
        // The time and traffic since the last invoice, invoiced now; nothing new due: said so.
        if (!(await entry.session.invoiceNow())) send(socket, { type: 'bye' });
        return;
      }
      if (message.type === 'refused') {
        emit({ type: 'refused', session: entry.id, code: message.code, message: message.message });
        closeLive(entry);
        return;
      }
      try {
        const promise = decodeMessage('consumerPromise', message.promise);
        if (promise.agreement.id.toLowerCase() === entry.session.agreementId)
          await entry.session.receivePromise(promise);
        else await receiveEarlier(entry, promise);
      } catch (error) {
        // A promise that pays nothing changes nothing; the invoice stays unpaid.
        const code = error instanceof ChitError ? error.code : 'ERROR';
        send(socket, { type: 'error', code, message: messageOf(error).slice(0, 4000) });
        emit({ type: 'error', session: entry.id, message: messageOf(error) });
      }
    };
    const onLine = (line: string) => {
      chain = chain.then(() => handle(line)).catch(fail);
    };
    socket.on('data', lineReader(onLine, fail));
    socket.on('close', () => {
      clearTimeout(timer);
      // Promises that arrived before the close are still exchanged: the consumer signed them.
      for (const data of entry?.connections ?? []) data.destroy();
      chain = chain.finally(() => {
        if (entry) closeLive(entry);
      });
    });
    if (first.length > 0) socket.emit('data', first);
  };

  const open = async (control: Socket, hello: ControlMessage<'hello'>): Promise<Live> => {
    const consumer = getAddress(hello.consumer);
    const id = randomBytes(16).toString('hex');
    const token = randomBytes(32);
    const session = new ProviderSession({
      ledger,
      consumer,
      prices,
      intervalMs,
      maxUnpaidInvoices,
      ...(options.verifier ? { verifier: options.verifier } : {}),
      tickMs: Math.max(20, Math.min(1_000, Math.floor(intervalMs / 5))),
      send: (invoice) => send(control, { type: 'invoice', invoice: encodeMessage(invoice) }),
    });
    const entry: Live = { id, token, consumer, session, control, connections: new Set(), up: 0, down: 0 };
    live.set(id, entry);
    session.on('invoice', (invoice) => emit({ type: 'invoice', session: id, total: invoice.agreementTotal }));
    session.on('paid', (hubPromise, total) => {
      send(control, { type: 'paid', total: total.toString(), hubPromise: encodeMessage(hubPromise) });
      emit({ type: 'paid', session: id, total });
    });
    session.on('stop', (unpaidInvoices) => {
      for (const socket of entry.connections) socket.destroy();
      send(control, { type: 'stopped', unpaidInvoices });
      emit({ type: 'stopped', session: id, unpaidInvoices });
    });
    session.on('resume', () => {
      send(control, { type: 'resumed' });
      emit({ type: 'resumed', session: id });
    });
    session.on('error', (error) => emit({ type: 'error', session: id, message: messageOf(error) }));
    send(control, {
      type: 'offer',
      version: PROTOCOL_VERSION,
      session: id,
      token: token.toString('hex'),
      provider: ledger.provider,
      hub: ledger.info.hub,
      hubUrl: options.hubUrl,
      chainId: ledger.info.chainId,
      agreementId: session.agreementId,
      prices: { perMinute: prices.perMinute.toString(), perGiB: prices.perGiB.toString() },
      intervalMs,
      graceMs,
    });
    emit({ type: 'session', session: id, consumer, agreementId: session.agreementId });
    session.start();
    return entry;
  };

  /**
   * A promise for an earlier agreement of this consumer (its connection was lost, or this process
   * restarted before exchanging it): checked against that agreement's stored invoices and exchanged.
   */
  const receiveEarlier = async (entry: Live, promise: SignedConsumerPromise): Promise<void> => {
    const agreementId = promise.agreement.id.toLowerCase() as Hex;
    if (!(await ledger.store.get(`${ledger.key}/agreements/${agreementId}`))) {
      throw new TunnelError('MALFORMED_MESSAGE', `Unknown agreement ${agreementId}`);
    }
    for (const other of live.values()) {
      if (other.session.agreementId === agreementId) return void (await other.session.receivePromise(promise));
    }
    const earlier = new ProviderSession({
      ledger,
      consumer: entry.consumer,
      prices,
      agreementId,
      send: () => {},
      ...(options.verifier ? { verifier: options.verifier } : {}),
    });
    try {
      await earlier.receivePromise(promise);
    } finally {
      earlier.close();
    }
  };

  const authorize = (credentials: { username: string; password: string } | undefined): Live | undefined => {
    const entry = credentials ? live.get(credentials.username) : undefined;
    if (!entry || !credentials) return undefined;
    const given = Buffer.from(credentials.password, 'hex');
    return given.length === entry.token.length && timingSafeEqual(given, entry.token) ? entry : undefined;
  };

  /** Connects to the target, or says why not (a SOCKS reply code). */
  const dial = (target: Target): Promise<Socket | number> =>
    new Promise((resolve) => {
      const upstream = connect({ host: target.host, port: target.port });
      upstream.setNoDelay(true);
      upstream.once('error', (error: NodeJS.ErrnoException) => {
        resolve(
          error.code === 'ECONNREFUSED'
            ? SocksReply.connectionRefused
            : error.code === 'ENETUNREACH'
              ? SocksReply.networkUnreachable
              : SocksReply.hostUnreachable,
        );
      });
      upstream.once('connect', () => {
        if (!options.allowPrivateTargets && isPrivateAddress(upstream.remoteAddress ?? '')) {
          upstream.destroy();
          resolve(SocksReply.notAllowed);
        } else resolve(upstream);
      });
    });

  const carry = (entry: Live, client: Socket, upstream: Socket, head: Buffer) => {
    entry.connections.add(client);
    const done = () => {
      entry.connections.delete(client);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', done);
    upstream.on('close', done);
    client.on('error', done);
    upstream.on('error', done);
    client.on('data', (chunk: Buffer) => {
      entry.up += chunk.length;
      entry.session.addTraffic(chunk.length);
    });
    upstream.on('data', (chunk: Buffer) => {
      entry.down += chunk.length;
      entry.session.addTraffic(chunk.length);
    });
    if (head.length > 0) {
      entry.up += head.length;
      entry.session.addTraffic(head.length);
      upstream.write(head);
    }
    client.pipe(upstream);
    upstream.pipe(client);
  };

  const onSocks = async (socket: Socket, reader: HandshakeReader) => {
    const entry = authorize(await socksServerGreeting(reader, socket, true));
    if (!entry) {
      socket.end(Buffer.from([0x01, 0x01]));
      return;
    }
    socket.write(Buffer.from([0x01, 0x00]));
    const target = await socksServerRequest(reader, socket);
    if (!entry.session.shouldServe() || live.get(entry.id) !== entry) {
      socket.end(socksReply(SocksReply.notAllowed));
      return;
    }
    const upstream = await dial(target);
    if (typeof upstream === 'number') {
      socket.end(socksReply(upstream));
      return;
    }
    socket.write(socksReply(SocksReply.succeeded));
    carry(entry, socket, upstream, reader.release());
  };

  const onConnect = async (socket: Socket, reader: HandshakeReader) => {
    const { target, credentials } = parseConnectHead(await reader.readHead());
    const entry = authorize(credentials);
    if (!entry) {
      socket.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="chit"\r\n\r\n');
      return;
    }
    if (!entry.session.shouldServe() || live.get(entry.id) !== entry) {
      socket.end('HTTP/1.1 402 Payment Required\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const upstream = await dial(target);
    if (typeof upstream === 'number') {
      const status = upstream === SocksReply.notAllowed ? '403 Forbidden' : '502 Bad Gateway';
      socket.end(`HTTP/1.1 ${status}\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    carry(entry, socket, upstream, reader.release());
  };

  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.setNoDelay(true);
    const reader = new HandshakeReader(socket);
    const timer = setTimeout(() => socket.destroy(), HANDSHAKE_MS);
    void (async () => {
      const [first] = await reader.peek(1);
      if (first === 0x7b) {
        clearTimeout(timer);
        return onControl(socket, reader);
      }
      await (first === 0x05 ? onSocks(socket, reader) : onConnect(socket, reader));
      clearTimeout(timer);
    })().catch(() => {
      clearTimeout(timer);
      socket.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 1080, options.host ?? '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host ?? '127.0.0.1';
  return {
    url: `tcp://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    sessions: () =>
      [...live.values()].map((entry) => ({
        session: entry.id,
        consumer: entry.consumer,
        agreementId: entry.session.agreementId,
        up: entry.up,
        down: entry.down,
        paid: entry.session.paid,
      })),
    close: async () => {
      for (const entry of [...live.values()]) closeLive(entry);
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function send(socket: Socket, message: Record<string, unknown>): void {
  if (!socket.destroyed && socket.writable) socket.write(controlLine(message));
}

function messageOf(error: unknown): string {
  return error instanceof ChitError ? error.shortMessage : error instanceof Error ? error.message : String(error);
}
