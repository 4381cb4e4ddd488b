import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { freePort, requireFreePort } from './ports';

// anvil, the local chain of `npm start`, `npm run chain`, the tests and the benches: the binary of the
// @foundry-rs/anvil npm package, spawned on a port of 127.0.0.1, ready once it answers JSON-RPC. What
// runs on it (Chit deployed by deploy/chit.ts, the SDK tests' own fixtures) is up to the caller.

/** The chain id anvil runs with (viem's `foundry`). */
export const ANVIL_CHAIN_ID = 31337;

/** A running anvil. */
export interface Anvil {
  /** `http://127.0.0.1:<port>` */
  url: string;
  port: number;
  process: ChildProcess;
  /** Stops it with `signal` (SIGTERM by default) and resolves once it has exited. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** The anvil binary of the `@foundry-rs/anvil-<platform>-<arch>` package installed for this machine. */
export function anvilBinary(): string {
  const platform = `${process.platform === 'win32' ? 'win32' : process.platform}-${process.arch === 'x64' ? 'amd64' : process.arch}`;
  const suffix = process.platform === 'win32' ? '.exe' : '';
  return path.join(
    path.dirname(require.resolve(`@foundry-rs/anvil-${platform}/package.json`)),
    'bin',
    `anvil${suffix}`,
  );
}

/** Whether a JSON-RPC node answers `eth_chainId` at `url`. */
async function answers(url: string): Promise<boolean> {
  try {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
    });
    return response.ok;
  } catch {
    return false;
  }
}

/**
 * Starts anvil on `port` (a free one when omitted) and resolves once it answers JSON-RPC (10 s at
 * most). A port in use fails first, naming `portVariable` (the setting that picks another port), since
 * a chain already running there would answer in place of this one. The anvil is killed when this
 * process exits, whether or not `stop()` was called.
 */
export async function startAnvil(options: { port?: number; portVariable?: string } = {}): Promise<Anvil> {
  const port = options.port ?? (await freePort());
  await requireFreePort(port, options.portVariable);
  const child = spawn(anvilBinary(), ['--port', String(port), '--chain-id', String(ANVIL_CHAIN_ID), '--silent'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk) => {
    stderr += chunk;
  });
  // Never leave anvil behind, even when this process exits without stopping it.
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  child.once('exit', () => process.off('exit', kill));
  const stop = (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      child.once('exit', () => resolve());
      child.kill(signal);
    });
  };
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`anvil exited (${child.exitCode}): ${stderr.trim()}`);
    if (await answers(url)) return { url, port, process: child, stop };
    if (Date.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  child.kill();
  throw new Error(`anvil did not answer on ${url} within 10 s: ${stderr.trim()}`);
}
