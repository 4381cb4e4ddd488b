import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from '@chit/devstack';
import { parseEther } from 'viem';
import { generatePrivateKey } from 'viem/accounts';
import { MIB } from './support/figures';
import { type Consumer, type Provider, type Stack, startStack, until } from './support/stack';
import { curl, startFileServer } from './support/tunnel';

const ROOT = path.join(__dirname, '..', '..');
const CHIT = path.join(ROOT, 'cli', 'bin', 'chit.js');
type Who = 'seller' | 'buyer';

/** A `chit` child process and everything it printed. */
class Chit {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;
  constructor(args: string[], env: NodeJS.ProcessEnv) {
    this.child = spawn(process.execPath, [CHIT, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout?.on('data', (chunk) => {
      this.stdout += chunk;
    });
    this.child.stderr?.on('data', (chunk) => {
      this.stderr += chunk;
    });
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
  }
  /** The JSON lines printed on stdout so far. */
  events(): Record<string, unknown>[] {
    return this.stdout
      .split('\n')
      .filter((line) => line.startsWith('{') && line.endsWith('}'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }
  output(): string {
    return `stdout:\n${this.stdout}\nstderr:\n${this.stderr}`;
  }
  async stop(): Promise<number | null> {
    if (this.child.exitCode === null) this.child.kill('SIGTERM');
    return this.exited;
  }
}

// `chit provide proxy` and `chit connect` (issue 15) as two people run them, each with a keystore of
// its own, and curl pulling a file through the consumer's local proxy.
describe('chit provide proxy and chit connect', function () {
  this.timeout(300_000);
  let stack: Stack;
  let seller: Provider;
  let buyer: Consumer;
  let files: Awaited<ReturnType<typeof startFileServer>>;
  let node: Chit | undefined;
  let nodeUrl: string;
  const homes: Record<Who, string> = { seller: '', buyer: '' };
  const env = (who: Who) => ({
    ...Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^(npm_|CHIT_)/i.test(key))),
    XDG_CONFIG_HOME: homes[who],
    CHIT_HUB_URL: stack.hub.url,
    CHIT_RPC_URL: stack.chain.url,
    CHIT_PASSWORD: `password of the ${who}`,
  });

  /** `chit provide proxy` on `port`, with the seller's store; resolves once it listens. */
  const startNode = async (port: number) => {
    const started = new Chit(
      [
        'provide',
        'proxy',
        '--price-per-minute',
        '0.01',
        '--price-per-gib',
        '1',
        '--port',
        String(port),
        '--interval',
        '0.3',
        '--allow-private-targets',
        '--json',
      ],
      env('seller'),
    );
    node = started;
    const settings = await until(
      'chit provide proxy to print its URL',
      async () => {
        if (started.child.exitCode !== null) throw new Error(`chit provide proxy exited:\n${started.output()}`);
        return started.stdout.trimEnd().endsWith('}')
          ? (JSON.parse(started.stdout) as Record<string, string>)
          : undefined;
      },
      90_000,
    );
    assert.equal(settings.provider, seller.address);
    assert.equal(settings.pricePerGiB, '1');
    nodeUrl = settings.url!;
    assert.equal(nodeUrl, `tcp://127.0.0.1:${port}`);
  };

  before(async () => {
    stack = await startStack();
    files = await startFileServer();
    const sellerKey = generatePrivateKey();
    const buyerKey = generatePrivateKey();
    [seller, buyer] = await Promise.all([
      stack.newProvider({ key: sellerKey }),
      stack.newConsumer({ key: buyerKey, deposit: parseEther('1') }),
    ]);
    for (const [who, key] of [
      ['seller', sellerKey],
      ['buyer', buyerKey],
    ] as const) {
      homes[who] = mkdtempSync(path.join(tmpdir(), `chit-tunnel-${who}-`));
      const keyFile = path.join(homes[who], 'key.txt');
      writeFileSync(keyFile, key);
      const imported = new Chit(['identity', 'import', '--private-key-file', keyFile, '--json'], env(who));
      assert.equal(await imported.exited, 0, imported.output());
    }
    await startNode(await freePort());
  });

  after(async () => {
    await node?.stop();
    await files?.close();
    await stack?.stop();
    for (const home of Object.values(homes)) if (home) rmSync(home, { recursive: true, force: true });
  });

  it('chit connect opens a local proxy; curl pulls a file through it, paid as it goes; Ctrl-C disconnects', async () => {
    const localPort = await freePort();
    const connect = new Chit(
      [
        'connect',
        nodeUrl,
        '--max-price-per-minute',
        '0.01',
        '--max-price-per-gib',
        '1',
        '--port',
        String(localPort),
        '--json',
      ],
      env('buyer'),
    );
    try {
      const listening = await until(
        'chit connect to listen',
        async () => {
          if (connect.child.exitCode !== null) throw new Error(`chit connect exited:\n${connect.output()}`);
          return connect.events().find((event) => event.type === 'listening');
        },
        90_000,
      );
      assert.equal(listening.socks5, `socks5h://127.0.0.1:${localPort}`);
      assert.equal(listening.provider, seller.address);
      const size = 3 * Number(MIB);
      const run = await curl([
        '--socks5-hostname',
        `127.0.0.1:${localPort}`,
        '-o',
        '/dev/null',
        '-w',
        '%{size_download}',
        `${files.url}/bytes/${size}`,
      ]);
      assert.equal(Number(run.stdout), size, run.stderr);
      // 3 MiB at 1 per GiB is 0.0029296875: a payment covers it once the next invoice is paid.
      await until('a payment for the file', async () =>
        connect.events().find((event) => event.type === 'paid' && Number(event.spent) > 0.0029296875),
      );
      await until('a status event counting the file', async () =>
        connect.events().some((event) => event.type === 'traffic' && Number(event.down) >= size),
      );
    } finally {
      assert.equal(await connect.stop(), 0, connect.output());
    }
    const last = connect.events().at(-1);
    assert.deepEqual(last, { type: 'disconnected', code: 'CLOSED', message: 'Closed by the user' });
    const spent = await buyer.ledger.total().catch(() => 0n); // the test's own ledger is not the CLI's
    assert.equal(spent, 0n);
    await until('the hub to credit the seller what the buyer paid', async () => {
      const [books, earned] = [
        await stack.hub.client.consumer(buyer.address),
        (await stack.hub.client.provider(seller.address)).earned,
      ];
      return books.credited > 0n && books.credited === earned;
    });
    assert.ok(node?.stderr.includes('"type":"paid"'), node?.output());
  });

  it('chit connect refuses a provider dearer than its maximum, and exits 1 having signed nothing', async () => {
    const before = (await stack.hub.client.consumer(buyer.address)).credited;
    const connect = new Chit(
      ['connect', nodeUrl, '--max-price-per-minute', '0.005', '--max-price-per-gib', '1', '--port', '0'],
      env('buyer'),
    );
    assert.equal(await connect.exited, 1, connect.output());
    assert.match(connect.stderr, /The provider asks 10000000000000000 per minute/);
    assert.match(connect.stderr, /Nothing was signed/);
    assert.equal((await stack.hub.client.consumer(buyer.address)).credited, before);
  });
  it('chit provide proxy killed (SIGKILL) and started again on its store: every promise the buyer signed is credited', async () => {
    const credited = (await stack.hub.client.consumer(buyer.address)).credited;
    const localPort = await freePort();
    const connect = new Chit(
      [
        'connect',
        nodeUrl,
        '--max-price-per-minute',
        '0.01',
        '--max-price-per-gib',
        '1',
        '--port',
        String(localPort),
      ].concat(['--reconnect', '120', '--json']),
      env('buyer'),
    );
    const pull = async (bytes: number) => {
      const run = await curl([
        '--socks5-hostname',
        `127.0.0.1:${localPort}`,
        '-o',
        '/dev/null',
        '-w',
        '%{size_download}',
        `${files.url}/bytes/${bytes}`,
      ]);
      assert.equal(Number(run.stdout), bytes, run.stderr);
    };
    const paid = () => connect.events().filter((event) => event.type === 'paid');
    try {
      await until(
        'chit connect to listen',
        async () => connect.events().some((event) => event.type === 'listening'),
        90_000,
      );
      await pull(2 * Number(MIB));
      await until('a payment for the file', async () => paid().some((event) => Number(event.spent) > 2 / 1024));
      const killed = node!;
      killed.child.kill('SIGKILL');
      await killed.exited;
      await startNode(Number(new URL(nodeUrl).port));
      await until(
        'chit connect to reconnect',
        async () => connect.events().filter((event) => event.type === 'connected').length >= 1,
        120_000,
      );
      const before = paid().length;
      await pull(Number(MIB));
      await until('a payment after the restart', async () => paid().length > before);
    } finally {
      assert.equal(await connect.stop(), 0, connect.output());
    }
    assert.ok(connect.events().some((event) => event.type === 'connected' && event.offer));
    assert.ok(!connect.stdout.includes('"token"'), 'the session password is not printed');
    const spent = parseEther(String(paid().at(-1)!.spent));
    await until('the hub to credit every promise the buyer signed', async () => {
      const books = await stack.hub.client.consumer(buyer.address);
      return (
        books.credited === credited + spent &&
        (await stack.hub.client.provider(seller.address)).earned === books.credited
      );
    });
  });
});
