import { connect, type Socket } from 'node:net';
import {
  HandshakeReader,
  parseConnectHead,
  SocksReply,
  socksClientConnect,
  socksReply,
  socksServerGreeting,
  socksServerRequest,
  type Target,
} from './handshake.js';

/** What the local proxy needs from its tunnel. */
export interface LocalProxyPeer {
  /** Every app connection, to close them with the tunnel. */
  apps: Set<Socket>;
  /** The provider's tunnel port. */
  provider: Target;
  /** The session's credentials while the tunnel serves; `undefined` refuses new connections. */
  credentials(): { username: string; password: string } | undefined;
  /** Counts tunnelled bytes, `up` from the app to the provider. */
  count(bytes: number, up: boolean): void;
}

/**
 * Serves one app connection of the local proxy: SOCKS5 without authentication (first byte 5) or an
 * HTTP CONNECT request, then a connection of its own to the provider with the session's credentials,
 * and the bytes both ways counted.
 *
 * @example
 * const server = createServer((socket) => serveApp(socket, peer));
 */
export function serveApp(app: Socket, peer: LocalProxyPeer): void {
  peer.apps.add(app);
  app.setNoDelay(true);
  app.on('close', () => peer.apps.delete(app));
  app.on('error', () => {});
  const reader = new HandshakeReader(app);
  void (async () => {
    const [first] = await reader.peek(1);
    const socks = first === 0x05;
    let target: Target;
    if (socks) {
      await socksServerGreeting(reader, app, false);
      target = await socksServerRequest(reader, app);
    } else {
      target = parseConnectHead(await reader.readHead()).target;
    }
    const refuse = (code: number, status: string) => app.end(socks ? socksReply(code) : `HTTP/1.1 ${status}\r\n\r\n`);
    const credentials = peer.credentials();
    if (!credentials) {
      refuse(SocksReply.generalFailure, '503 Service Unavailable');
      return;
    }
    const upstream = connect({ host: peer.provider.host, port: peer.provider.port });
    upstream.setNoDelay(true);
    upstream.on('error', () => app.destroy());
    app.on('close', () => upstream.destroy());
    await new Promise<void>((resolve, reject) => {
      upstream.once('connect', resolve);
      upstream.once('error', reject);
    });
    const { reply, rest } = await socksClientConnect(upstream, credentials, target);
    if (reply !== SocksReply.succeeded) {
      refuse(reply, reply === SocksReply.notAllowed ? '403 Forbidden' : '502 Bad Gateway');
      upstream.destroy();
      return;
    }
    app.write(socks ? socksReply(SocksReply.succeeded) : 'HTTP/1.1 200 Connection Established\r\n\r\n');
    carry(app, upstream, reader.release(), rest, peer.count);
  })().catch(() => app.destroy());
}

function carry(app: Socket, upstream: Socket, head: Buffer, rest: Buffer, count: LocalProxyPeer['count']): void {
  app.on('data', (chunk: Buffer) => count(chunk.length, true));
  upstream.on('data', (chunk: Buffer) => count(chunk.length, false));
  upstream.on('close', () => app.destroy());
  if (head.length > 0) {
    count(head.length, true);
    upstream.write(head);
  }
  if (rest.length > 0) {
    count(rest.length, false);
    app.write(rest);
  }
  app.pipe(upstream);
  upstream.pipe(app);
}
