import { isIP, type Socket } from 'node:net';
import { TunnelError } from './errors.js';

/**
 * Reads a handshake from a socket byte by byte as it arrives; {@link HandshakeReader.release} hands
 * back what arrived past it (the first bytes of the tunnelled stream).
 */
export class HandshakeReader {
  readonly #socket: Socket;
  #buffer = Buffer.alloc(0);
  #waiter: (() => void) | undefined;
  #failed: Error | undefined;
  readonly #onData = (chunk: Buffer) => {
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
    this.#wake();
  };
  readonly #onEnd = () => {
    this.#failed ??= new TunnelError('HANDSHAKE_FAILED', 'The connection closed during the handshake');
    this.#wake();
  };

  constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('close', this.#onEnd);
    socket.on('error', this.#onEnd);
  }

  /** The next `n` bytes, without consuming them. */
  async peek(n: number): Promise<Buffer> {
    while (this.#buffer.length < n) await this.#more();
    return this.#buffer.subarray(0, n);
  }

  /** The next `n` bytes. */
  async read(n: number): Promise<Buffer> {
    const bytes = Buffer.from(await this.peek(n));
    this.#buffer = this.#buffer.subarray(n);
    return bytes;
  }

  /** Everything up to and including `\r\n\r\n` (an HTTP head), at most `limit` bytes. */
  async readHead(limit = 16 * 1024): Promise<string> {
    for (;;) {
      const end = this.#buffer.indexOf('\r\n\r\n');
      if (end >= 0) {
        const head = this.#buffer.subarray(0, end + 4).toString('latin1');
        this.#buffer = this.#buffer.subarray(end + 4);
        return head;
      }
      if (this.#buffer.length > limit) throw new TunnelError('HANDSHAKE_FAILED', 'HTTP head too long');
      await this.#more();
    }
  }

  /** Stops reading and returns the bytes that arrived after the handshake. */
  release(): Buffer {
    this.#socket.off('data', this.#onData);
    this.#socket.off('end', this.#onEnd);
    this.#socket.off('close', this.#onEnd);
    this.#socket.off('error', this.#onEnd);
    return this.#buffer;
  }

  #more(): Promise<void> {
    if (this.#failed) return Promise.reject(this.#failed);
    return new Promise((resolve, reject) => {
      this.#waiter = () => (this.#failed ? reject(this.#failed) : resolve());
    });
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.();
  }
}

/** Where a tunnel goes. */
export interface Target {
  host: string;
  port: number;
}

/** SOCKS5 reply codes (RFC 1928 §6). */
export const SocksReply = {
  succeeded: 0x00,
  generalFailure: 0x01,
  notAllowed: 0x02,
  networkUnreachable: 0x03,
  hostUnreachable: 0x04,
  connectionRefused: 0x05,
  commandNotSupported: 0x07,
  addressTypeNotSupported: 0x08,
} as const;

/** A SOCKS5 reply with an empty IPv4 bound address. */
export function socksReply(code: number): Buffer {
  return Buffer.from([0x05, code, 0x00, 0x01, 0, 0, 0, 0, 0, 0]);
}

/**
 * The server side of a SOCKS5 greeting (RFC 1928 §3): picks username/password (RFC 1929) when
 * `credentials` are wanted, else "no authentication". Returns the credentials given, if any.
 */
export async function socksServerGreeting(
  reader: HandshakeReader,
  socket: Socket,
  wantCredentials: boolean,
): Promise<{ username: string; password: string } | undefined> {
  const [version, count] = await reader.read(2);
  if (version !== 0x05) throw new TunnelError('HANDSHAKE_FAILED', `SOCKS version ${version} is not 5`);
  const methods = await reader.read(count!);
  const method = wantCredentials ? 0x02 : 0x00;
  if (!methods.includes(method)) {
    socket.end(Buffer.from([0x05, 0xff]));
    throw new TunnelError(
      'HANDSHAKE_FAILED',
      wantCredentials ? 'The SOCKS client offers no username/password authentication' : 'No acceptable SOCKS method',
    );
  }
  socket.write(Buffer.from([0x05, method]));
  if (!wantCredentials) return undefined;
  const [subVersion, userLength] = await reader.read(2);
  if (subVersion !== 0x01) throw new TunnelError('HANDSHAKE_FAILED', 'Bad username/password sub-negotiation version');
  const username = (await reader.read(userLength!)).toString('utf8');
  const [passwordLength] = await reader.read(1);
  const password = (await reader.read(passwordLength!)).toString('utf8');
  return { username, password };
}

/** Reads a SOCKS5 request (RFC 1928 §4) and returns its CONNECT target; other commands are refused. */
export async function socksServerRequest(reader: HandshakeReader, socket: Socket): Promise<Target> {
  const [version, command, , addressType] = await reader.read(4);
  if (version !== 0x05) throw new TunnelError('HANDSHAKE_FAILED', `SOCKS version ${version} is not 5`);
  let host: string;
  if (addressType === 0x01) host = [...(await reader.read(4))].join('.');
  else if (addressType === 0x03) host = (await reader.read((await reader.read(1))[0]!)).toString('utf8');
  else if (addressType === 0x04) {
    const raw = await reader.read(16);
    host = Array.from({ length: 8 }, (_, i) => raw.readUInt16BE(i * 2).toString(16)).join(':');
  } else {
    socket.end(socksReply(SocksReply.addressTypeNotSupported));
    throw new TunnelError('HANDSHAKE_FAILED', `SOCKS address type ${addressType} is not supported`);
  }
  const port = (await reader.read(2)).readUInt16BE(0);
  if (command !== 0x01) {
    socket.end(socksReply(SocksReply.commandNotSupported));
    throw new TunnelError('HANDSHAKE_FAILED', `SOCKS command ${command} is not supported (only CONNECT)`);
  }
  return { host, port };
}

/** Parses an HTTP CONNECT head: its target and its `Proxy-Authorization: Basic` credentials. */
export function parseConnectHead(head: string): {
  target: Target;
  credentials?: { username: string; password: string };
} {
  const [requestLine = '', ...headerLines] = head.split('\r\n');
  const match = /^CONNECT (\S+) HTTP\/1\.[01]$/.exec(requestLine);
  const authority = match?.[1] ? /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+):(\d{1,5})$/.exec(match[1]) : null;
  if (!authority)
    throw new TunnelError('HANDSHAKE_FAILED', `Not an HTTP CONNECT request: ${requestLine.slice(0, 100)}`);
  const port = Number(authority[2]);
  if (port < 1 || port > 65_535) throw new TunnelError('HANDSHAKE_FAILED', `Bad port ${authority[2]}`);
  const target = { host: authority[1]!.replace(/^\[|\]$/g, ''), port };
  for (const line of headerLines) {
    const header = /^proxy-authorization:\s*basic\s+(\S+)\s*$/i.exec(line);
    if (!header) continue;
    const decoded = Buffer.from(header[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) break;
    return { target, credentials: { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) } };
  }
  return { target };
}

/**
 * The client side of SOCKS5 with username/password: greets, authenticates, asks to CONNECT to
 * `target`, and returns what arrived after the reply.
 *
 * @throws {TunnelError} `HANDSHAKE_FAILED` naming the reply code when refused.
 */
export async function socksClientConnect(
  socket: Socket,
  credentials: { username: string; password: string },
  target: Target,
): Promise<{ reply: number; rest: Buffer }> {
  const reader = new HandshakeReader(socket);
  try {
    socket.write(Buffer.from([0x05, 0x01, 0x02]));
    const [version, method] = await reader.read(2);
    if (version !== 0x05 || method !== 0x02) {
      throw new TunnelError('HANDSHAKE_FAILED', 'The provider refused username/password authentication');
    }
    const user = Buffer.from(credentials.username);
    const password = Buffer.from(credentials.password);
    socket.write(Buffer.concat([Buffer.from([0x01, user.length]), user, Buffer.from([password.length]), password]));
    const [, status] = await reader.read(2);
    if (status !== 0x00) throw new TunnelError('HANDSHAKE_FAILED', 'The provider refused the session credentials');
    socket.write(Buffer.concat([Buffer.from([0x05, 0x01, 0x00]), encodeAddress(target)]));
    const [, reply, , addressType] = await reader.read(4);
    const addressLength =
      addressType === 0x01 ? 4 : addressType === 0x04 ? 16 : addressType === 0x03 ? (await reader.read(1))[0]! : 0;
    await reader.read(addressLength + 2);
    return { reply: reply!, rest: reader.release() };
  } catch (error) {
    reader.release();
    throw error;
  }
}

function encodeAddress(target: Target): Buffer {
  const port = Buffer.alloc(2);
  port.writeUInt16BE(target.port);
  const kind = isIP(target.host);
  if (kind === 4) return Buffer.concat([Buffer.from([0x01, ...target.host.split('.').map(Number)]), port]);
  if (kind === 6) {
    const groups = expandIpv6(target.host);
    const raw = Buffer.alloc(16);
    for (const [i, group] of groups.entries()) raw.writeUInt16BE(group, i * 2);
    return Buffer.concat([Buffer.from([0x04]), raw, port]);
  }
  const name = Buffer.from(target.host);
  if (name.length > 255) throw new TunnelError('HANDSHAKE_FAILED', 'Host name longer than 255 bytes');
  return Buffer.concat([Buffer.from([0x03, name.length]), name, port]);
}

function expandIpv6(address: string): number[] {
  const [head = '', tail = ''] = address.split('::');
  const parts = (text: string) => (text ? text.split(':').map((part) => Number.parseInt(part, 16)) : []);
  const left = parts(head);
  const right = address.includes('::') ? parts(tail) : [];
  return [...left, ...new Array(8 - left.length - right.length).fill(0), ...right];
}

/**
 * Whether an IP address is loopback, private, link-local or unspecified: a provider refuses such
 * targets unless told otherwise, so that its buyers cannot reach its own network.
 *
 * @example
 * isPrivateAddress('127.0.0.1'); // true
 */
export function isPrivateAddress(address: string): boolean {
  const ip = address.replace(/^::ffff:/i, '');
  if (isIP(ip) === 4) {
    const [a = 0, b = 0] = ip.split('.').map(Number);
    return (
      a === 0 ||
      a === 10 ||
      a === 127 ||
      (a === 169 && b === 254) ||
      (a === 172 && b >= 16 && b < 32) ||
      (a === 192 && b === 168) ||
      (a === 100 && b >= 64 && b < 128)
    );
  }
  const lower = ip.toLowerCase();
  return lower === '::1' || lower === '::' || /^f[cd]/.test(lower) || /^fe[89ab]/.test(lower);
}
