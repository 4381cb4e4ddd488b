import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import {
  ChitError,
  type ConsumerLedger,
  ConsumerSession,
  decodeMessage,
  Emitter,
  encodeMessage,
  GIB,
  InvoiceRejectedError,
  OverchargeError,
  type Prices,
  type PriceTolerance,
  type SignedConsumerPromise,
} from '@chit/sdk';
import { type Address, getAddress, type Hex } from 'viem';
import { TunnelError } from './errors.js';
import type { Target } from './handshake.js';
import { serveApp } from './local-proxy.js';
import { controlLine, lineReader, type Offer, PROTOCOL_VERSION, parseControl } from './wire.js';

/** Options of {@link connectTunnel}. */
export interface ConnectTunnelOptions {
  /** The provider's tunnel port: `tcp://host:port` (or `host:port`). */
  provider: string;
  /** The consumer's ledger at its hub: the provider's offer must name the same hub and chain. */
  ledger: ConsumerLedger;
  /** The most the consumer pays per minute and per GiB; a dearer offer is refused. */
  maxPrices: Prices;
  /** How far an invoice may exceed the consumer's own measure (the SDK's defaults when unset). */
  tolerance?: PriceTolerance;
  /** The local proxy's port (SOCKS5 and HTTP CONNECT); default 0, a free port. */
  port?: number;
  /** The local proxy's address; default 127.0.0.1. */
  host?: string;
  /** How long to try to reach the provider again after the control channel is lost. Default 30 s; 0: never. */
  reconnectMs?: number;
}

/** What a {@link Tunnel} shows: a VPN client's status line. */
export interface TunnelStatus {
  provider: Address;
  connected: boolean;
  /** Milliseconds since the tunnel first connected. */
  elapsedMs: number;
  /** Bytes from the apps to the provider, and back. */
  up: number;
  down: number;
  /** What this tunnel paid, in token base units. */
  spent: bigint;
  /** What the tunnel costs now, per minute: the time price plus the traffic of the last seconds. */
  ratePerMinute: bigint;
  agreementId: Hex;
}

/** The events of a {@link Tunnel}; each carries one object whose `type` is the event's name. */
export interface TunnelEvents {
  connected: [{ type: 'connected'; provider: Address; agreementId: Hex; offer: Offer; resumed: boolean }];
  invoice: [{ type: 'invoice'; agreementTotal: bigint }];
  paid: [{ type: 'paid'; agreementTotal: bigint; increment: bigint; spent: bigint }];
  traffic: [{ type: 'traffic' } & TunnelStatus];
  stopped: [{ type: 'stopped'; unpaidInvoices: number }];
  resumed: [{ type: 'resumed' }];
  overcharge: [{ type: 'overcharge'; asked: bigint; justified: bigint; allowed: bigint; message: string }];
  warning: [{ type: 'warning'; code: string; message: string }];
  reconnecting: [{ type: 'reconnecting'; message: string }];
  disconnected: [{ type: 'disconnected'; code: string; message: string }];
}

const ANSWER_MS = 10_000;
/** How long {@link Tunnel.close} waits for the last invoice to be paid and exchanged. */
const FINAL_MS = 5_000;
const RATE_WINDOW_MS = 5_000;

/**
 * Buys bandwidth from a tunnel provider: opens its control channel, checks the offer against
 * `maxPrices` and the ledger's hub, and opens a local SOCKS5 + HTTP CONNECT proxy for the user's
 * apps. Each app connection goes over a connection of its own to the provider (SOCKS5 with the
 * session's credentials); the bytes both ways are measured and every invoice is paid through a
 * {@link ConsumerSession}, which refuses what the measured time and traffic do not justify. A refused
 * invoice signs nothing and drops the provider for good. A lost control channel is retried for
 * `reconnectMs`, continuing the same agreement, and the last promise sent is sent again.
 *
 * @throws {TunnelError} `OFFER_REFUSED` when the offer is dearer than `maxPrices` or for another hub; `NO_ANSWER`.
 * @example
 * const tunnel = await connectTunnel({ provider: 'tcp://node.example:1080', ledger, maxPrices });
 * tunnel.on('paid', ({ spent }) => console.log(`spent ${spent}`));
 * // curl --socks5-hostname 127.0.0.1:${tunnel.port} https://example.com
 */
export async function connectTunnel(options: ConnectTunnelOptions): Promise<Tunnel> {
  const tunnel = new Tunnel(options);
  await tunnel.start();
  return tunnel;
}

/** A consumer's tunnel: see {@link connectTunnel}. */
export class Tunnel {
  readonly #options: ConnectTunnelOptions;
  readonly #target: Target;
  readonly #events = new Emitter<TunnelEvents>();
  readonly #apps = new Set<Socket>();
  #server: Server | undefined;
  #control: Socket | undefined;
  #offer: Offer | undefined;
  #session: ConsumerSession | undefined;
  #paidBefore = 0n;
  #unacked: SignedConsumerPromise | undefined;
  #payments: Promise<void> = Promise.resolve();
  #startedAt = 0;
  #up = 0;
  #down = 0;
  #spent = 0n;
  #samples: { at: number; bytes: number }[] = [];
  #ticker: ReturnType<typeof setInterval> | undefined;
  #closed = false;
  #closing = false;
  /** While leaving: settles {@link close}'s wait for the last invoice. */
  #onSettledUp: (() => void) | undefined;
  /** The agreement total of the last invoice paid while leaving. */
  #finalTotal: bigint | undefined;
  #serving = false;
  #resolveDone!: (event: TunnelEvents['disconnected'][0]) => void;
  /** Settles once the tunnel is closed for good, with why. */
  readonly done: Promise<TunnelEvents['disconnected'][0]>;

  constructor(options: ConnectTunnelOptions) {
    this.#options = options;
    this.#target = parseProvider(options.provider);
    this.done = new Promise((resolve) => {
      this.#resolveDone = resolve;
    });
  }

  /** The local proxy's port: SOCKS5 (`socks5h://127.0.0.1:port`) and HTTP CONNECT (`http://127.0.0.1:port`). */
  get port(): number {
    return (this.#server?.address() as AddressInfo | null)?.port ?? 0;
  }

  /** The provider's offer in force. */
  get offer(): Offer {
    if (!this.#offer) throw new TunnelError('CLOSED', 'The tunnel is not connected');
    return this.#offer;
  }

  /**
   * Subscribes to an event; returns a function that unsubscribes.
   *
   * @example
   * tunnel.on('overcharge', ({ message }) => console.warn(message));
   */
  on<K extends keyof TunnelEvents>(event: K, listener: (...args: TunnelEvents[K]) => void): () => void {
    return this.#events.on(event, listener);
  }

  /**
   * The status line's figures.
   *
   * @example
   * const { up, down, spent } = tunnel.status();
   */
  status(): TunnelStatus {
    const now = Date.now();
    const offer = this.offer;
    const window = this.#samples.filter((sample) => sample.at >= now - RATE_WINDOW_MS);
    const first = window[0];
    const bytes = first ? this.#up + this.#down - first.bytes : 0;
    const span = first ? Math.max(1_000, now - first.at) : 60_000;
    const bytesPerMinute = BigInt(Math.round((bytes * 60_000) / span));
    return {
      provider: getAddress(offer.provider),
      connected: this.#serving,
      elapsedMs: now - this.#startedAt,
      up: this.#up,
      down: this.#down,
      spent: this.#spent,
      ratePerMinute: BigInt(offer.prices.perMinute) + (BigInt(offer.prices.perGiB) * bytesPerMinute) / GIB,
      agreementId: offer.agreementId as Hex,
    };
  }

  /** Connects (the first time) and opens the local proxy. Called by {@link connectTunnel}. */
  async start(): Promise<void> {
    await this.#establish();
    this.#startedAt = Date.now();
    const server = createServer((socket) =>
      serveApp(socket, {
        apps: this.#apps,
        provider: this.#target,
        credentials: () =>
          this.#serving && this.#offer ? { username: this.#offer.session, password: this.#offer.token } : undefined,
        count: (bytes, up) => {
          if (up) this.#up += bytes;
          else this.#down += bytes;
          this.#session?.addTraffic(bytes);
        },
      }),
    );
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#options.port ?? 0, this.#options.host ?? '127.0.0.1', () => resolve());
    });
    this.#ticker = setInterval(() => {
      this.#samples = [
        ...this.#samples.filter((s) => s.at >= Date.now() - RATE_WINDOW_MS),
        { at: Date.now(), bytes: this.#up + this.#down },
      ];
      this.#events.emit('traffic', { type: 'traffic', ...this.status() });
    }, 1_000);
    this.#ticker.unref?.();
  }

  /**
   * Disconnects: closes the local proxy, every connection and the control channel.
   *
   * @example
   * await tunnel.close();
   */
  async close(): Promise<void> {
    this.#closing = true;
    await this.#payments;
    await this.#settleUp();
    this.#finish('CLOSED', 'Closed by the user');
  }

  /**
   * Asks the provider for a last invoice (`bye`), for the time and traffic since its last one, pays
   * it, and waits until the provider says it was exchanged, or that nothing was due; at most
   * `FINAL_MS`. A provider that does not answer in time is left with what it invoiced before.
   */
  async #settleUp(): Promise<void> {
    const control = this.#control;
    if (!control || this.#closed || !this.#serving) return;
    const settled = new Promise<void>((resolve) => {
      this.#onSettledUp = resolve;
    });
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, FINAL_MS);
    });
    control.write(controlLine({ type: 'bye' }));
    await Promise.race([settled, bound]);
    clearTimeout(timer);
    this.#onSettledUp = undefined;
    await this.#payments;
  }

  async #establish(): Promise<void> {
    const control = connect({ host: this.#target.host, port: this.#target.port });
    control.setNoDelay(true);
    const lines: string[] = [];
    let wake: (() => void) | undefined;
    let failure: Error | undefined;
    const onError = (error: Error) => {
      failure ??= error;
      wake?.();
    };
    control.on(
      'data',
      lineReader((line) => {
        lines.push(line);
        wake?.();
      }, onError),
    );
    control.on('error', onError);
    control.on('close', () => onError(new TunnelError('NO_ANSWER', 'The provider closed the control channel')));
    const nextLine = async (): Promise<string> => {
      const deadline = setTimeout(
        () => onError(new TunnelError('NO_ANSWER', 'The provider sent no offer in time')),
        ANSWER_MS,
      );
      try {
        while (lines.length === 0) {
          if (failure) throw failure;
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
        }
        return lines.shift()!;
      } finally {
        clearTimeout(deadline);
      }
    };
    const consumer = this.#options.ledger.consumer;
    control.write(controlLine({ type: 'hello', version: PROTOCOL_VERSION, consumer }));
    let offer: Offer;
    try {
      offer = parseControl(await nextLine(), ['offer']);
      this.#checkOffer(offer);
    } catch (error) {
      control.destroy();
      throw error;
    }
    control.removeAllListeners('data');
    control.removeAllListeners('close');
    control.on('error', () => {});
    this.#session?.close();
    const provider = getAddress(offer.provider);
    const agreementId = offer.agreementId.toLowerCase() as Hex;
    this.#session = new ConsumerSession({
      ledger: this.#options.ledger,
      provider,
      agreementId,
      prices: { perMinute: BigInt(offer.prices.perMinute), perGiB: BigInt(offer.prices.perGiB) },
      ...(this.#options.tolerance ? { tolerance: this.#options.tolerance } : {}),
    });
    this.#paidBefore = await this.#options.ledger.paid(provider, agreementId);
    this.#offer = offer;
    this.#control = control;
    this.#serving = true;
    const resumed = this.#unacked !== undefined || this.#startedAt > 0;
    if (this.#unacked) {
      // The provider may have gone away before it exchanged this promise: it pays an invoice the
      // provider stored before sending it, so the provider is paid for what it served until then.
      control.write(controlLine({ type: 'promise', promise: encodeMessage(this.#unacked) }));
      this.#unacked = undefined;
    }
    control.on(
      'data',
      lineReader(
        (line) => this.#onLine(control, line),
        (error) => this.#drop(error),
      ),
    );
    for (const line of lines) this.#onLine(control, line);
    control.on('close', () => this.#lost(control));
    this.#events.emit('connected', { type: 'connected', provider, agreementId, offer, resumed });
  }

  #checkOffer(offer: Offer): void {
    const { ledger, maxPrices } = this.#options;
    if (!sameHex(offer.hub, ledger.hub) || offer.chainId !== ledger.chainId) {
      throw new TunnelError(
        'OFFER_REFUSED',
        `The provider takes payments at hub ${offer.hub} on chain ${offer.chainId}; this consumer pays through ${ledger.hub} on chain ${ledger.chainId}`,
        'Connect to a provider of your hub, or use a ledger at its hub. Nothing was signed.',
      );
    }
    if (this.#offer && !sameHex(offer.provider, this.#offer.provider)) {
      throw new TunnelError(
        'OFFER_REFUSED',
        `Another provider answered: ${offer.provider}, not ${this.#offer.provider}`,
        'The tunnel stays with the identity it connected to. Nothing was signed.',
      );
    }
    const perMinute = BigInt(offer.prices.perMinute);
    const perGiB = BigInt(offer.prices.perGiB);
    if (perMinute > maxPrices.perMinute || perGiB > maxPrices.perGiB) {
      throw new TunnelError(
        'OFFER_REFUSED',
        `The provider asks ${perMinute} per minute and ${perGiB} per GiB; you allow ${maxPrices.perMinute} and ${maxPrices.perGiB}`,
        'Nothing was signed. Raise the maximum prices or choose another provider.',
      );
    }
  }

  #onLine(control: Socket, line: string): void {
    if (control !== this.#control) return;
    let message: ReturnType<typeof parseControl<'invoice' | 'paid' | 'stopped' | 'resumed' | 'error' | 'bye'>>;
    try {
      message = parseControl(line, ['invoice', 'paid', 'stopped', 'resumed', 'error', 'bye']);
    } catch (error) {
      this.#drop(error);
      return;
    }
    if (message.type === 'invoice') {
      const raw = message.invoice;
      this.#payments = this.#payments.then(() => this.#pay(control, raw));
    } else if (message.type === 'bye') {
      this.#onSettledUp?.();
    } else if (message.type === 'paid') {
      const total = BigInt(message.total);
      if (this.#unacked && this.#unacked.agreement.total <= total) this.#unacked = undefined;
      // Leaving: the last invoice, paid after the bye, is exchanged.
      if (this.#closing && this.#finalTotal !== undefined && total >= this.#finalTotal) this.#onSettledUp?.();
    } else if (message.type === 'stopped') {
      this.#events.emit('stopped', { type: 'stopped', unpaidInvoices: message.unpaidInvoices });
    } else if (message.type === 'resumed') {
      this.#events.emit('resumed', { type: 'resumed' });
    } else {
      this.#events.emit('warning', { type: 'warning', code: message.code, message: message.message });
    }
  }

  async #pay(control: Socket, raw: unknown): Promise<void> {
    if (control !== this.#control || this.#closed) return;
    const session = this.#session!;
    try {
      const invoice = decodeMessage('invoice', raw);
      this.#events.emit('invoice', { type: 'invoice', agreementTotal: invoice.agreementTotal });
      const promise = await session.pay(invoice);
      const increment = promise.agreement.total - this.#paidBefore;
      this.#paidBefore = promise.agreement.total;
      this.#spent += increment;
      this.#unacked = promise;
      if (this.#closing) this.#finalTotal = promise.agreement.total;
      if (control.writable) control.write(controlLine({ type: 'promise', promise: encodeMessage(promise) }));
      this.#events.emit('paid', {
        type: 'paid',
        agreementTotal: promise.agreement.total,
        increment,
        spent: this.#spent,
      });
    } catch (error) {
      if (error instanceof OverchargeError) {
        this.#events.emit('overcharge', {
          type: 'overcharge',
          asked: error.asked,
          justified: error.justified,
          allowed: error.allowed,
          message: error.shortMessage,
        });
      }
      this.#drop(error);
    }
  }

  /** The provider broke the rules: tell it why, and leave for good. Nothing was signed. */
  #drop(error: unknown): void {
    const code =
      error instanceof InvoiceRejectedError ? 'INVOICE_REFUSED' : error instanceof ChitError ? error.code : 'ERROR';
    const message = error instanceof ChitError ? error.shortMessage : String(error);
    const reason = error instanceof InvoiceRejectedError ? error.reason : code;
    if (this.#control?.writable) this.#control.write(controlLine({ type: 'refused', code: reason, message }));
    this.#finish(code, message);
  }

  #lost(control: Socket): void {
    if (control !== this.#control || this.#closed) return;
    this.#serving = false;
    const reconnectMs = this.#options.reconnectMs ?? 30_000;
    if (reconnectMs <= 0) {
      this.#finish('NO_ANSWER', 'The provider closed the control channel');
      return;
    }
    this.#events.emit('reconnecting', { type: 'reconnecting', message: 'The provider closed the control channel' });
    const deadline = Date.now() + reconnectMs;
    const attempt = async (): Promise<void> => {
      for (;;) {
        if (this.#closed || this.#closing) return;
        try {
          await this.#establish();
          return;
        } catch (error) {
          if (error instanceof TunnelError && error.code === 'OFFER_REFUSED') {
            this.#drop(error);
            return;
          }
          if (Date.now() > deadline) {
            this.#finish('NO_ANSWER', `The provider could not be reached again: ${(error as Error).message}`);
            return;
          }
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
      }
    };
    this.#payments = this.#payments.then(attempt);
  }

  #finish(code: string, message: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#onSettledUp?.();
    this.#serving = false;
    if (this.#ticker) clearInterval(this.#ticker);
    this.#session?.close();
    // end, not destroy: the last promise sent still reaches the provider.
    const control = this.#control;
    control?.end();
    setTimeout(() => control?.destroy(), 2_000).unref();
    for (const socket of this.#apps) socket.destroy();
    this.#server?.close();
    const event = { type: 'disconnected' as const, code, message };
    this.#events.emit('disconnected', event);
    this.#resolveDone(event);
  }
}

function parseProvider(text: string): Target {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `tcp://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new TunnelError('OFFER_REFUSED', `Not a provider address: ${text}`, 'Give tcp://host:port.');
  }
  const port = Number(url.port);
  if (!url.hostname || !Number.isInteger(port) || port < 1) {
    throw new TunnelError('OFFER_REFUSED', `Not a provider address: ${text}`, 'Give tcp://host:port.');
  }
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port };
}

function sameHex(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}
