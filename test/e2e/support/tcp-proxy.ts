import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { freePort } from '@chit/devstack';

/**
 * A TCP proxy on a fixed local port that forwards every connection to `target`, and that a test can cut
 * (open connections are reset, the port stops listening, so new ones are refused) and restore (it
 * listens on the same port again). Put between the hub and anvil, it makes the RPC unreachable for real.
 *
 *   const proxy = await TcpProxy.start({ host: '127.0.0.1', port: 8545 });
 *   await stack.hub.restart({ RPC_URL: proxy.url });
 *   await proxy.cut(); ... await proxy.restore();
 *   await proxy.close();
 */
export class TcpProxy {
  /** Connections accepted and forwarded since the start. */
  connections = 0;
  /** Connections refused or reset by {@link cut}. */
  severed = 0;
  #server: Server | undefined;
  readonly #sockets = new Set<Socket>();

  private constructor(
    readonly port: number,
    readonly target: { host: string; port: number },
  ) {}

  /** A proxy to `target` on a free port, listening. */
  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    const proxy = new TcpProxy(await freePort(), target);
    await proxy.restore();
    return proxy;
  }

  /** The proxy as an HTTP URL (for an RPC). */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Whether the link is cut. */
  get isCut(): boolean {
    return this.#server === undefined;
  }

  /** Resets every open connection and stops listening: connections are refused until {@link restore}. */
  async cut(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    const closed = new Promise((resolve) => server.close(resolve));
    for (const socket of this.#sockets) {
      this.severed++;
      socket.resetAndDestroy();
    }
    this.#sockets.clear();
    await closed;
  }

  /** Listens again on the same port. */
  async restore(): Promise<void> {
    if (this.#server) return;
    const server = createServer((client) => this.#forward(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#server = server;
  }

  /** Cuts the link for good. */
  close(): Promise<void> {
    return this.cut();
  }

  #forward(client: Socket): void {
    this.connections++;
    const upstream = createConnection(this.target);
    this.#sockets.add(client);
    this.#sockets.add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      this.#sockets.delete(client);
      this.#sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  }
}
