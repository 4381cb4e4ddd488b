import type { ConsumerLedger } from '@chit/sdk';
import {
  ConsumerSession,
  decodeMessage,
  encodeMessage,
  type Invoice,
  type Prices,
  type PriceTolerance,
  type ProviderLedger,
  ProviderSession,
  type SignedConsumerPromise,
  type SignedHubPromise,
} from '@chit/sdk';

/** A clock the test moves by hand; sessions read it through `read`. */
export class SimClock {
  now = Date.now();
  readonly read = () => this.now;
  advance(ms: number): void {
    this.now += ms;
  }
}

/** What goes over the wire between the parties: encoded, through JSON, decoded strictly. */
export function overWire<N extends 'invoice' | 'consumerPromise'>(name: N, message: unknown) {
  return decodeMessage(name, JSON.parse(JSON.stringify(encodeMessage(message))));
}

export interface LinkOptions {
  /** The provider's prices. */
  prices: Prices;
  /** The prices the consumer agreed to; default `prices` (a provider that overcharges sets its own higher). */
  consumerPrices?: Prices;
  /** The provider invoices at least this often; default 30 s. */
  intervalMs?: number;
  maxUnpaidInvoices?: number;
  tolerance?: PriceTolerance;
}

/**
 * A provider session and a consumer session connected over a simulated wire, both on one simulated
 * clock. `step()` is one full payment: the provider invoices what is due, the consumer checks and pays
 * it, the provider exchanges the promise at the hub. `invoice()`, `pay()` and `deliver()`
 * are its three parts, for tests that misbehave in between.
 */
export class Link {
  readonly consumer: ConsumerSession;
  readonly provider: ProviderSession;
  /** Invoices delivered to the consumer and not taken yet. */
  readonly inbox: Invoice[] = [];
  /** `stop` events of the provider session (it stopped serving a consumer that does not pay). */
  stops = 0;
  resumes = 0;

  constructor(
    consumerLedger: ConsumerLedger,
    providerLedger: ProviderLedger,
    clock: SimClock,
    readonly options: LinkOptions,
  ) {
    this.provider = new ProviderSession({
      ledger: providerLedger,
      consumer: consumerLedger.consumer,
      prices: options.prices,
      clock: clock.read,
      intervalMs: options.intervalMs ?? 30_000,
      ...(options.maxUnpaidInvoices ? { maxUnpaidInvoices: options.maxUnpaidInvoices } : {}),
      send: (invoice) => {
        this.inbox.push(overWire('invoice', invoice));
      },
    });
    this.provider.on('stop', () => this.stops++);
    this.provider.on('resume', () => this.resumes++);
    this.consumer = new ConsumerSession({
      ledger: consumerLedger,
      provider: providerLedger.provider,
      prices: options.consumerPrices ?? options.prices,
      clock: clock.read,
      ...(options.tolerance ? { tolerance: options.tolerance } : {}),
    });
  }

  /** Traffic through the tunnel, measured by both sides. */
  traffic(bytes: bigint): void {
    this.provider.addTraffic(bytes);
    this.consumer.addTraffic(bytes);
  }

  /** The provider ticks; returns the invoice the consumer received, if one was due. */
  async invoice(): Promise<Invoice | undefined> {
    const sent = await this.provider.tick();
    return sent ? this.inbox.shift() : undefined;
  }

  /** The consumer checks and pays `invoice`; returns the promise as the provider receives it. */
  async pay(invoice: Invoice): Promise<SignedConsumerPromise> {
    return overWire('consumerPromise', await this.consumer.pay(invoice));
  }

  /** The provider exchanges `promise` at the hub. */
  deliver(promise: SignedConsumerPromise): Promise<SignedHubPromise> {
    return this.provider.receivePromise(promise);
  }

  /** One full payment; fails when no invoice was due. */
  async step(): Promise<{ invoice: Invoice; promise: SignedConsumerPromise; hubPromise: SignedHubPromise }> {
    const invoice = await this.invoice();
    if (!invoice) throw new Error('no invoice was due');
    const promise = await this.pay(invoice);
    const hubPromise = await this.deliver(promise);
    return { invoice, promise, hubPromise };
  }

  close(): void {
    this.provider.close();
    this.consumer.close();
  }
}
