import assert from 'node:assert/strict';
import { createServer, type Socket, connect as tcpConnect } from 'node:net';
import { describe, it } from 'node:test';
import { TunnelError } from '../src/errors.js';
import { isPrivateAddress, parseConnectHead, socksClientConnect } from '../src/handshake.js';
import { lineReader, MAX_LINE, parseControl } from '../src/wire.js';

const isTunnelError = (code: string) => (error: unknown) => error instanceof TunnelError && error.code === code;

describe('parseControl', () => {
  it('parses a hello', () => {
    const hello = parseControl('{"type":"hello","version":1,"consumer":"0x1111111111111111111111111111111111111111"}', [
      'hello',
    ]);
    assert.equal(hello.consumer, '0x1111111111111111111111111111111111111111');
  });

  it('refuses what is not JSON, an unexpected type, and a malformed field, naming it', () => {
    assert.throws(() => parseControl('not json', ['hello']), isTunnelError('MALFORMED_MESSAGE'));
    assert.throws(() => parseControl('{"type":"offer"}', ['hello']), /Unexpected control message "offer"/);
    assert.throws(
      () => parseControl('{"type":"hello","version":1,"consumer":"0x12"}', ['hello']),
      /Malformed hello message: consumer/,
    );
    assert.throws(
      () => parseControl('{"type":"paid","total":"-1","hubPromise":{}}', ['paid']),
      /Malformed paid message: total/,
    );
    assert.throws(() => parseControl('{"type":"resumed","extra":1}', ['resumed']), /Malformed resumed message: extra/);
  });
});

describe('lineReader', () => {
  it('splits lines across chunks, and refuses a line longer than MAX_LINE', () => {
    const lines: string[] = [];
    const errors: TunnelError[] = [];
    const read = lineReader(
      (line) => lines.push(line),
      (error) => errors.push(error),
    );
    read('{"a":1}\n{"b"');
    read(':2}\n');
    assert.deepEqual(lines, ['{"a":1}', '{"b":2}']);
    read('x'.repeat(MAX_LINE + 1));
    assert.equal(errors[0]?.code, 'MALFORMED_MESSAGE');
  });
});

describe('parseConnectHead', () => {
  it('reads the target and the Basic credentials', () => {
    const auth = Buffer.from('session:token').toString('base64');
    const parsed = parseConnectHead(`CONNECT example.com:443 HTTP/1.1\r\nProxy-Authorization: Basic ${auth}\r\n\r\n`);
    assert.deepEqual(parsed, {
      target: { host: 'example.com', port: 443 },
      credentials: { username: 'session', password: 'token' },
    });
    assert.deepEqual(parseConnectHead('CONNECT [::1]:8080 HTTP/1.1\r\n\r\n'), { target: { host: '::1', port: 8080 } });
  });

  it('refuses other methods, bad authorities and ports', () => {
    for (const head of [
      'GET http://example.com/ HTTP/1.1\r\n\r\n',
      'CONNECT example.com HTTP/1.1\r\n\r\n',
      'CONNECT example.com:0 HTTP/1.1\r\n\r\n',
      'CONNECT example.com:70000 HTTP/1.1\r\n\r\n',
    ]) {
      assert.throws(() => parseConnectHead(head), isTunnelError('HANDSHAKE_FAILED'), head);
    }
  });
});

describe('isPrivateAddress', () => {
  it('tells loopback, private, link-local and unspecified addresses from public ones', () => {
    for (const address of ['127.0.0.1', '10.1.2.3', '172.16.0.1', '192.168.1.1', '169.254.1.1', '0.0.0.0', '::1']) {
      assert.ok(isPrivateAddress(address), address);
    }
    for (const address of ['::ffff:127.0.0.1', 'fd00::1', 'fe80::1']) assert.ok(isPrivateAddress(address), address);
    for (const address of ['8.8.8.8', '172.32.0.1', '2001:4860:4860::8888']) {
      assert.ok(!isPrivateAddress(address), address);
    }
  });
});

describe('socksClientConnect', () => {
  it('fails with HANDSHAKE_FAILED when the server refuses the credentials', async () => {
    const server = createServer((socket: Socket) => {
      socket.once('data', () => {
        socket.write(Buffer.from([0x05, 0x02]));
        socket.once('data', () => socket.end(Buffer.from([0x01, 0x01])));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const port = (server.address() as { port: number }).port;
    const socket = tcpConnect({ host: '127.0.0.1', port });
    await new Promise((resolve) => socket.once('connect', resolve));
    await assert.rejects(
      socksClientConnect(socket, { username: 'a', password: 'b' }, { host: 'example.com', port: 80 }),
      /refused the session credentials/,
    );
    socket.destroy();
    server.close();
  });
});
