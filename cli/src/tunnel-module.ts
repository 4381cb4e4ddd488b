import type { ConsumerLedger, Prices, ProviderLedger, Verifier } from '@chit/sdk';
import type { Address, Hex } from 'viem';
import { CliError } from './errors.js';

// `chit provide proxy` and `chit connect` run on @chit/tunnel, which is built on the SDK: it is loaded
// when one of them runs, never at build time, so the command line does not depend on it. The shapes
// below are the parts of its API these commands use (tunnel/src/provider.ts, tunnel/src/consumer.ts).

/** What @chit/tunnel's `startTunnelProvider` reports. */
export type TunnelProviderEvent =
  | { type: 'session'; session: string; consumer: Address; agreementId: Hex }
  | { type: 'invoice'; session: string; total: bigint }
  | { type: 'paid'; session: string; total: bigint }
  | { type: 'stopped'; session: string; unpaidInvoices: number }
  | { type: 'resumed'; session: string }
  | { type: 'closed'; session: string; up: number; down: number; paid: bigint }
  | { type: 'refused'; session: string; code: string; message: string }
  | { type: 'error'; session?: string; message: string };

/** A consumer tunnel's status line. */
export interface TunnelStatus {
  provider: Address;
  connected: boolean;
  elapsedMs: number;
  up: number;
  down: number;
  spent: bigint;
  ratePerMinute: bigint;
  agreementId: Hex;
}

/** The events of a consumer tunnel, each an object with its `type`. */
export type TunnelEvent = { type: string; [field: string]: unknown };

/** A consumer tunnel. */
export interface TunnelHandle {
  readonly port: number;
  readonly done: Promise<{ type: 'disconnected'; code: string; message: string }>;
  on(event: string, listener: (event: TunnelEvent) => void): () => void;
  status(): TunnelStatus;
  close(): Promise<void>;
}

/** The part of @chit/tunnel that `chit` uses. */
export interface TunnelModule {
  startTunnelProvider(options: {
    ledger: ProviderLedger;
    hubUrl: string;
    prices: Prices;
    intervalMs?: number;
    graceMs?: number;
    port?: number;
    host?: string;
    allowPrivateTargets?: boolean;
    verifier?: Verifier;
    onEvent?: (event: TunnelProviderEvent) => void;
  }): Promise<{ url: string; port: number; close(): Promise<void> }>;
  connectTunnel(options: {
    provider: string;
    ledger: ConsumerLedger;
    maxPrices: Prices;
    port?: number;
    host?: string;
    reconnectMs?: number;
  }): Promise<TunnelHandle>;
}

/**
 * Loads @chit/tunnel, or says how to install it.
 *
 * @example
 * const { connectTunnel } = await loadTunnel();
 */
export async function loadTunnel(): Promise<TunnelModule> {
  // A variable specifier: TypeScript does not resolve it, so building chit never needs @chit/tunnel.
  const specifier = '@chit/tunnel';
  try {
    return (await import(specifier)) as TunnelModule;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'MODULE_NOT_FOUND') throw error;
    throw new CliError(
      'TUNNEL_MISSING',
      'This command needs the package @chit/tunnel, which is not installed (or not built)',
      'In the Chit checkout run `npm run build -w tunnel`; elsewhere `npm install @chit/tunnel`.',
    );
  }
}
