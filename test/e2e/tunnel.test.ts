import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import {
  allowance,
  encodeMessage,
  hashlockOf,
  MemoryStore,
  type Prices,
  resolveTolerance,
  settleProvider,
} from '@chit/sdk';
import { connectTunnel, startTunnelProvider, type Tunnel, TunnelError, type TunnelProvider } from '@chit/tunnel';
import { type Hex, parseEther } from 'viem';
import { FaultyFetch, Gate } from './support/faulty-fetch';
import { cost, feeOf, MIB, sum } from './support/figures';
import { type Consumer, type Provider, type Stack, startStack, until } from './support/stack';
import { curl, RawControl, startFileServer } from './support/tunnel';

const PRICES: Prices = { perMinute: 10n ** 16n, perGiB: 10n ** 18n }; // 0.01 a minute, 1 a GiB
const INTERVAL_MS = 300;
const hex32 = () => `0x${randomBytes(32).toString('hex')}` as Hex;

// Bandwidth sold per minute and per GiB (issue 15): real traffic on loopback through the consumer's
// local proxy and the provider's tunnel, paid through the hub, settled on-chain.
describe('bandwidth: a paid tunnel (startTunnelProvider, connectTunnel)', function () {
  this.timeout(300_000);
  let stack: Stack;
  let files: Awaited<ReturnType<typeof startFileServer>>;
  const providers: Provider[] = [];
  const running: TunnelProvider[] = [];
  const tunnels: Tunnel[] = [];

  const provide = async (provider: Provider, port = 0) => {
    const tunnelProvider = await startTunnelProvider({
      ledger: provider.ledger,
      hubUrl: stack.hub.url,
      prices: PRICES,
      intervalMs: INTERVAL_MS,
      graceMs: 2 * INTERVAL_MS,
      port,
      allowPrivateTargets: true,
    });
    running.push(tunnelProvider);
    return tunnelProvider;
  };
  const connectTo = async (provider: TunnelProvider, consumer: Consumer) => {
    const tunnel = await connectTunnel({ provider: provider.url, ledger: consumer.ledger, maxPrices: PRICES });
    tunnels.push(tunnel);
    return tunnel;
  };
  const download = async (tunnel: Tunnel, bytes: number, via: 'socks' | 'connect' = 'socks') => {
    const proxy =
      via === 'socks'
        ? ['--socks5-hostname', `127.0.0.1:${tunnel.port}`]
        : ['-p', '--proxy', `http://127.0.0.1:${tunnel.port}`];
    const run = await curl([...proxy, '-o', '/dev/null', '-w', '%{size_download}', `${files.url}/bytes/${bytes}`]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(Number(run.stdout), bytes);
  };
  /** What the agreement of `tunnel` was paid, by the consumer's ledger. */
  const paidOf = (tunnel: Tunnel, consumer: Consumer) =>
    consumer.ledger.paid(tunnel.status().provider, tunnel.status().agreementId);

  before(async () => {
    stack = await startStack();
    files = await startFileServer();
    for (let i = 0; i < 2; i++) providers.push(await stack.newProvider());
  });

  after(async () => {
    for (const tunnel of tunnels) await tunnel.close().catch(() => {});
    for (const provider of running) await provider.close().catch(() => {});
    await files?.close();
    await stack?.stop();
  });

  it('carries downloads and uploads through SOCKS5 and HTTP CONNECT; invoices and books match time and bytes', async () => {
    const consumer = await stack.newConsumer({ deposit: parseEther('1') });
    const provider = await provide(providers[0]!);
    const tunnel = await connectTo(provider, consumer);
    const invoices: bigint[] = [];
    tunnel.on('invoice', ({ agreementTotal }) => invoices.push(agreementTotal));

    await download(tunnel, 4 * Number(MIB), 'socks');
    await download(tunnel, 3 * Number(MIB), 'connect');
    const body = randomBytes(2 * Number(MIB));
    const up = await curl([
      '--socks5-hostname',
      `127.0.0.1:${tunnel.port}`,
      '-H',
      'content-type: application/octet-stream',
      '--data-binary',
      `@${await writeTemp(body)}`,
      `${files.url}/upload`,
    ]);
    assert.equal(up.code, 0, up.stderr);
    assert.equal(Number(up.stdout), body.length);

    // Both sides measured the same bytes, both ways.
    const measured = await until('both sides to count the same bytes', async () => {
      const [session] = provider.sessions();
      const status = tunnel.status();
      return session && session.up === status.up && session.down === status.down ? status : undefined;
    });
    assert.ok(measured.down >= 7 * Number(MIB) && measured.down < 7 * Number(MIB) + 64 * 1024, String(measured.down));
    assert.ok(measured.up >= 2 * Number(MIB) && measured.up < 2 * Number(MIB) + 64 * 1024, String(measured.up));
    const bytes = BigInt(measured.up + measured.down);

    // An invoice for at least the bytes carried and the time until now gets paid…
    const asOf = tunnel.status().elapsedMs;
    const floor = cost(PRICES, asOf, bytes);
    const paid = await until('an invoice for the traffic and time to be paid', async () => {
      const value = await paidOf(tunnel, consumer);
      return value >= floor ? value : undefined;
    });
    // …and none asked more than the consumer's measure with the tolerance (5 s, 3 % + 4 MiB).
    const { allowed } = allowance(PRICES, tunnel.status().elapsedMs, bytes, resolveTolerance());
    assert.ok(paid <= allowed, `paid ${paid} > allowed ${allowed}`);
    // Time is due as long as the tunnel is open: a second invoice comes within an interval or two,
    // however fast the traffic above went (the first may have covered all of it).
    await until('a second invoice', async () => (invoices.length >= 2 ? true : undefined));
    assert.ok(
      invoices.every((total, i) => i === 0 || total > invoices[i - 1]!),
      `invoices not increasing: ${invoices.join(', ')}`,
    );
    // The hub's books: the consumer's promises, each credited to the provider, once.
    await until('the hub to credit every promise', async () => {
      const total = await consumer.ledger.total();
      return (await stack.hub.client.consumer(consumer.address)).credited === total;
    });
    assert.equal((await stack.hub.client.provider(providers[0]!.address)).earned, await consumer.ledger.total());
    assert.ok(tunnel.status().spent === (await consumer.ledger.total()));
  });

  it('cuts off a consumer that stops paying after the grace, and refuses its new connections', async () => {
    const provider = running[0]!;
    const freeloader = await stack.newConsumer({ deposit: parseEther('1') });
    const control = new RawControl(provider.port, freeloader.address);
    const offer = await until('the offer', async () => control.of('offer')[0]);
    const offeredAt = Date.now();
    assert.equal(offer.graceMs, 2 * INTERVAL_MS);
    const proxy = `socks5h://${offer.session}:${offer.token}@127.0.0.1:${provider.port}`;
    const small = await curl([
      '--proxy',
      proxy,
      '-o',
      '/dev/null',
      '-w',
      '%{size_download}',
      `${files.url}/bytes/1000`,
    ]);
    assert.equal(small.stdout, '1000', small.stderr);
    // HTTP CONNECT with the same credentials, straight to the provider.
    const connectRun = await curl([
      '-p',
      '--proxy',
      `http://127.0.0.1:${provider.port}`,
      '--proxy-user',
      `${offer.session}:${offer.token}`,
      `${files.url}/bytes/5`,
    ]);
    assert.equal(connectRun.stdout, 'aaaaa', connectRun.stderr);
    const started = Date.now();
    const slow = await curl(['--proxy', proxy, '-o', '/dev/null', `${files.url}/slow`]);
    assert.notEqual(slow.code, 0, 'the open connection was closed');
    const stopped = control.of('stopped')[0];
    assert.ok(stopped, JSON.stringify(control.messages));
    assert.equal(stopped.unpaidInvoices, 3);
    assert.ok(slow.endedAt - started < 10_000, `cut after ${slow.endedAt - started} ms`);
    // Not before the grace: the third unpaid invoice is three intervals after the session began.
    assert.ok(slow.endedAt - offeredAt >= 2 * INTERVAL_MS, `cut ${slow.endedAt - offeredAt} ms after the offer`);
    assert.ok(control.of('invoice').length >= 3);
    const refused = await curl(['--proxy', proxy, `${files.url}/bytes/5`]);
    assert.notEqual(refused.code, 0, 'a new connection is refused');
    const refusedConnect = await curl([
      '-p',
      '--proxy',
      `http://127.0.0.1:${provider.port}`,
      '--proxy-user',
      `${offer.session}:${offer.token}`,
      '-w',
      '%{http_connect}',
      `${files.url}/bytes/5`,
    ]);
    assert.equal(refusedConnect.stdout, '402');
    const wrong = await curl([
      '--proxy',
      `socks5h://${offer.session}:${'0'.repeat(64)}@127.0.0.1:${provider.port}`,
      `${files.url}/bytes/5`,
    ]);
    assert.notEqual(wrong.code, 0, 'wrong credentials are refused');
    control.socket.destroy();
    assert.equal((await stack.hub.client.consumer(freeloader.address)).credited, 0n);
  });

  it('refuses an offer dearer than the maximum, and drops a provider that overcharges, signing nothing', async () => {
    const consumer = await stack.newConsumer({ deposit: parseEther('1') });
    await assert.rejects(
      connectTunnel({
        provider: running[0]!.url,
        ledger: consumer.ledger,
        maxPrices: { perMinute: PRICES.perMinute, perGiB: PRICES.perGiB - 1n },
      }),
      (error: unknown) => error instanceof TunnelError && error.code === 'OFFER_REFUSED',
    );
    // A provider of its own making: a fair offer, then an invoice for far more than the time and bytes.
    const received: Record<string, unknown>[] = [];
    let connections = 0;
    const fake: Server = createServer((socket) => {
      socket.on('data', (chunk) => {
        for (const line of chunk.toString().split('\n').filter(Boolean)) {
          const message = JSON.parse(line) as Record<string, unknown>;
          received.push(message);
          if (message.type !== 'hello') continue;
          const agreementId = hex32();
          const scope = {
            hub: stack.chain.hub,
            chainId: stack.chain.deployment.chainId,
            provider: providers[1]!.address,
          };
          socket.write(
            `${JSON.stringify({ type: 'offer', version: 1, session: randomBytes(16).toString('hex'), token: randomBytes(32).toString('hex'), ...scope, hubUrl: stack.hub.url, agreementId, prices: { perMinute: PRICES.perMinute.toString(), perGiB: PRICES.perGiB.toString() }, intervalMs: INTERVAL_MS, graceMs: 600 })}\n`,
          );
          const invoice = {
            ...scope,
            agreementId,
            agreementTotal: 10n ** 16n,
            hashlock: hashlockOf(hex32()),
            fee: stack.hubFee,
          };
          // The first connection gets the overcharge; the second an invoice that is not one.
          const wire = connections++ === 0 ? encodeMessage(invoice) : { ...encodeMessage(invoice), fee: 'high' };
          setTimeout(() => socket.write(`${JSON.stringify({ type: 'invoice', invoice: wire })}\n`), 200);
        }
      });
    });
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', () => resolve()));
    const port = (fake.address() as { port: number }).port;
    const tunnel = await connectTunnel({
      provider: `tcp://127.0.0.1:${port}`,
      ledger: consumer.ledger,
      maxPrices: PRICES,
    });
    const overcharges: unknown[] = [];
    tunnel.on('overcharge', (event) => overcharges.push(event));
    const done = await tunnel.done;
    assert.equal(done.code, 'INVOICE_REFUSED');
    assert.equal(overcharges.length, 1);
    await until('the refusal to reach the provider', async () => received.find((m) => m.type === 'refused'));
    assert.equal(received.find((m) => m.type === 'refused')?.code, 'OVERCHARGE');
    assert.ok(!received.some((m) => m.type === 'promise'), 'no promise was sent');
    assert.equal(await consumer.ledger.total(), 0n, 'nothing was signed');
    const closed = await curl(['--socks5-hostname', `127.0.0.1:${tunnel.port}`, `${files.url}/bytes/5`]);
    assert.notEqual(closed.code, 0, 'the local proxy is closed');
    // A malformed invoice: refused with a typed error, nothing signed either.
    const again = await connectTunnel({
      provider: `tcp://127.0.0.1:${port}`,
      ledger: consumer.ledger,
      maxPrices: PRICES,
    });
    assert.deepEqual(await again.done, {
      type: 'disconnected',
      code: 'MALFORMED',
      message: 'Malformed invoice: fee: Invalid input: expected number, received string',
    });
    await until('the second refusal', async () => received.filter((m) => m.type === 'refused').length === 2);
    assert.ok(!received.some((m) => m.type === 'promise'), 'no promise was sent');
    assert.equal(await consumer.ledger.total(), 0n, 'nothing was signed');
    fake.close();
  });

  it('a provider killed mid-session restarts on its store and is paid for everything it served', async () => {
    const store = new MemoryStore();
    const wire = new FaultyFetch();
    const dying = await stack.newProvider({ store, fetch: wire.fetch });
    providers.push(dying);
    const first = await provide(dying);
    const consumer = await stack.newConsumer({ deposit: parseEther('1') });
    const tunnel = await connectTo(first, consumer);
    await download(tunnel, 2 * Number(MIB));
    await until('a first payment', async () => (await paidOf(tunnel, consumer)) > 0n);
    // The next exchange never comes back: the process dies with a promise received and not exchanged.
    const arrived = new Gate();
    const hang = async () => {
      arrived.open();
      return new Promise<Response>(() => {});
    };
    wire.always('/v1/exchange', hang);
    wire.always('/v1/exchanges', hang);
    await Promise.race([arrived.opened, until('an exchange to start', async () => false, 20_000)]);
    const agreement = tunnel.status().agreementId;
    const signed = await consumer.ledger.paid(dying.address, agreement);
    await first.close();

    // The same identity on the same store and port: the consumer comes back on a new agreement and
    // sends its last promise again; the ledger completes the exchange it had started.
    const reborn = await stack.newProvider({ key: dying.key, register: 'none', store, beneficiary: dying.beneficiary });
    providers[providers.indexOf(dying)] = reborn;
    const second = await startTunnelProvider({
      ledger: reborn.ledger,
      hubUrl: stack.hub.url,
      prices: PRICES,
      intervalMs: INTERVAL_MS,
      port: first.port,
      allowPrivateTargets: true,
    });
    running.push(second);
    await until('the consumer to reconnect', async () => {
      const status = tunnel.status();
      return status.connected && status.agreementId !== agreement;
    });
    await download(tunnel, Number(MIB));
    await until('the hub to credit the promise the first process received', async () => {
      return (await reborn.ledger.credited(agreement)) === signed;
    });
    await until('a payment in the new agreement', async () => (await paidOf(tunnel, consumer)) > 0n);
    await tunnel.close();
    await until('every promise the consumer signed to be credited', async () => {
      const total = await consumer.ledger.total();
      return (await stack.hub.client.provider(dying.address)).earned === total ? total : undefined;
    });
  });

  it('serves several consumers at once, and one consumer through two providers with one consistent total', async () => {
    const [a, b] = [
      await stack.newConsumer({ deposit: parseEther('1') }),
      await stack.newConsumer({ deposit: parseEther('1') }),
    ];
    const second = await provide(providers[1]!);
    const onFirstA = await connectTo(running[0]!, a);
    const onFirstB = await connectTo(running[0]!, b);
    const onSecondA = await connectTo(second, a);
    await Promise.all([
      download(onFirstA, 3 * Number(MIB)),
      download(onFirstB, 2 * Number(MIB), 'connect'),
      download(onSecondA, 4 * Number(MIB)),
    ]);
    for (const [tunnel, consumer] of [
      [onFirstA, a],
      [onFirstB, b],
      [onSecondA, a],
    ] as const) {
      const { up, down } = tunnel.status();
      const floor = cost(PRICES, 0, BigInt(up + down));
      await until('each tunnel to be paid for its bytes', async () => (await paidOf(tunnel, consumer)) >= floor);
    }
    for (const tunnel of [onFirstA, onFirstB, onSecondA]) await tunnel.close();
    // One total across both providers: what a signed is what its two agreements were paid.
    const paidA = (await paidOf(onFirstA, a)) + (await paidOf(onSecondA, a));
    assert.equal(await a.ledger.total(), paidA);
    await until('the hub to credit a and b', async () => {
      const [booksA, booksB] = [await stack.hub.client.consumer(a.address), await stack.hub.client.consumer(b.address)];
      return booksA.credited === paidA && booksB.credited === (await b.ledger.total());
    });
  });

  it('a consumer that leaves between invoices pays for the time and traffic since the last one', async () => {
    const seller = await stack.newProvider();
    providers.push(seller);
    // Invoices a minute apart: none falls due while the test runs, so only the last one pays.
    const provider = await startTunnelProvider({
      ledger: seller.ledger,
      hubUrl: stack.hub.url,
      prices: PRICES,
      intervalMs: 60_000,
      graceMs: 120_000,
      allowPrivateTargets: true,
      port: 0,
    });
    running.push(provider);
    const consumer = await stack.newConsumer({ deposit: parseEther('1') });
    const tunnel = await connectTo(provider, consumer);
    await download(tunnel, 3 * Number(MIB));
    const measured = await until('both sides to count the same bytes', async () => {
      const [session] = provider.sessions();
      const status = tunnel.status();
      return session && session.up === status.up && session.down === status.down ? status : undefined;
    });
    assert.equal(await paidOf(tunnel, consumer), 0n, 'no invoice fell due');
    const { provider: address, agreementId } = tunnel.status();
    await tunnel.close();

    const paid = await consumer.ledger.paid(address, agreementId);
    const bytes = BigInt(measured.up + measured.down);
    assert.ok(paid >= cost(PRICES, measured.elapsedMs, bytes), `paid ${paid} covers the time and the bytes`);
    const { allowed } = allowance(PRICES, tunnel.status().elapsedMs, bytes, resolveTolerance());
    assert.ok(paid <= allowed, `paid ${paid} > allowed ${allowed}`);
    // Exchanged before close() returned: the hub credited it to the provider.
    assert.equal((await stack.hub.client.consumer(consumer.address)).credited, paid);
    assert.equal((await stack.hub.client.provider(seller.address)).earned, paid);
  });

  it('settles on-chain to the wei: each provider gets what its consumers promised, less the hub fee', async () => {
    for (const tunnel of tunnels) await tunnel.close();
    const earned: bigint[] = [];
    for (const provider of providers) {
      const latest = await until(`${provider.address}'s latest hub promise`, async () => {
        const books = await stack.hub.client.provider(provider.address);
        const mine = await provider.ledger.latest();
        return mine.hubPromise && mine.hubPromise.total === books.earned ? mine : undefined;
      });
      const total = latest.hubPromise!.total;
      await stack.chain.send(
        settleProvider(provider.wallet, { promise: latest.hubPromise!, preimage: latest.preimage! }),
      );
      assert.equal(await stack.read.providerSettled(provider.address), total);
      assert.equal(await stack.read.tokenBalance(provider.beneficiary), total - feeOf(total, stack.hubFee));
      earned.push(total);
    }
    // Every token the providers earned is one the consumers promised, and the reverse.
    const books = await stack.db.query<{ credited: string }>('SELECT credited FROM consumers');
    assert.equal(sum(earned), sum(books.rows.map((row) => BigInt(row.credited))));
  });
});

async function writeTemp(body: Buffer): Promise<string> {
  const { writeFile, mkdtemp } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const path = await import('node:path');
  const file = path.join(await mkdtemp(path.join(tmpdir(), 'chit-tunnel-')), 'upload.bin');
  await writeFile(file, body);
  return file;
}
