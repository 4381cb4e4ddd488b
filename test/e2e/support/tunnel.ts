import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';

/**
 * Helpers of the bandwidth tests (tunnel.test.ts, tunnel-cli.test.ts): a local HTTP server of files
 * of known sizes, curl as a child process, and a bare control-channel client that never pays.
 */

/** A local HTTP server: `GET /bytes/N` answers N bytes, `POST /upload` counts the body, `GET /slow` trickles. */
export async function startFileServer() {
  const uploads: number[] = [];
  const server: Server = createServer((request, response) => {
    const url = request.url ?? '';
    const size = /^\/bytes\/(\d+)$/.exec(url)?.[1];
    if (request.method === 'GET' && size) {
      response.writeHead(200, { 'content-length': size, 'content-type': 'application/octet-stream' });
      response.end(Buffer.alloc(Number(size), 0x61));
    } else if (request.method === 'POST' && url === '/upload') {
      let bytes = 0;
      request.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
      });
      request.on('end', () => {
        uploads.push(bytes);
        response.end(String(bytes));
      });
    } else if (url === '/slow') {
      // 1 KiB every 50 ms for a minute: a connection that stays open while the test watches it.
      response.writeHead(200, { 'content-type': 'application/octet-stream' });
      let sent = 0;
      const timer = setInterval(() => {
        if (sent++ >= 1_200) {
          clearInterval(timer);
          response.end();
        } else response.write(Buffer.alloc(1024, 0x62));
      }, 50);
      response.on('close', () => clearInterval(timer));
    } else {
      response.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    uploads,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export interface CurlRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** When it ended, by Date.now(). */
  endedAt: number;
}

/** Runs curl with `args`; resolves when it exits. */
export function curl(args: string[]): Promise<CurlRun> {
  return new Promise((resolve, reject) => {
    const child = spawn('curl', ['--silent', '--show-error', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, endedAt: Date.now() }));
  });
}

/** A control channel opened by hand: says hello, collects every message, and pays nothing. */
export class RawControl {
  readonly messages: Record<string, unknown>[] = [];
  readonly socket: Socket;
  #buffer = '';

  constructor(port: number, consumer: string) {
    this.socket = connect({ host: '127.0.0.1', port });
    this.socket.on('error', () => {});
    this.socket.on('data', (chunk) => {
      this.#buffer += chunk.toString();
      let index = this.#buffer.indexOf('\n');
      while (index >= 0) {
        this.messages.push(JSON.parse(this.#buffer.slice(0, index)));
        this.#buffer = this.#buffer.slice(index + 1);
        index = this.#buffer.indexOf('\n');
      }
    });
    this.socket.write(`${JSON.stringify({ type: 'hello', version: 1, consumer })}\n`);
  }

  of(type: string): Record<string, unknown>[] {
    return this.messages.filter((message) => message.type === type);
  }

  send(message: Record<string, unknown>): void {
    this.socket.write(`${JSON.stringify(message)}\n`);
  }
}
