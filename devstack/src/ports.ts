import { createServer } from 'node:net';

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/**
 * Fails with a message saying what to do when `port` on 127.0.0.1 is taken (stop what runs there, or set
 * `variable`, when given, to another port): otherwise a server already running there (a chain, a hub)
 * would answer in place of the one about to start.
 */
export function requireFreePort(port: number, variable?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', () =>
      reject(
        new Error(
          `port ${port} is in use: stop what runs there${variable ? `, or set ${variable} to another port` : ''}`,
        ),
      ),
    );
    server.listen(port, '127.0.0.1', () => server.close(() => resolve()));
  });
}
