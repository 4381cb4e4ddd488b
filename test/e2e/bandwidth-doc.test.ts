import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from '@chit/devstack';
import { type Stack, startStack, until } from './support/stack';
import { curl } from './support/tunnel';

const ROOT = path.join(__dirname, '..', '..');
const PASSWORD = 'a password for the docs';

/** A command started from the repository root in a process group of its own, as `&` or a terminal would. */
class Background {
  readonly child: ChildProcess;
  output = '';
  constructor(command: string, args: string[], env: Record<string, string>) {
    const base = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^(npm_|CHIT_)/i.test(key)));
    this.child = spawn(command, args, {
      cwd: ROOT,
      env: { ...base, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    this.child.stdout?.on('data', (chunk) => {
      this.output += chunk;
    });
    this.child.stderr?.on('data', (chunk) => {
      this.output += chunk;
    });
  }
  /** Ctrl-C to the whole group (sh, npx and the node it runs); the exit code of the group's leader. */
  async interrupt(): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null || this.child.pid === undefined) {
      return this.child.exitCode;
    }
    const exited = new Promise<number | null>((resolve) => this.child.once('exit', (code) => resolve(code)));
    const signal = (name: NodeJS.Signals) => {
      try {
        if (this.child.pid) process.kill(-this.child.pid, name);
      } catch {} // the group is gone already
    };
    signal('SIGINT');
    const timer = setTimeout(() => signal('SIGKILL'), 15_000);
    const code = await exited;
    clearTimeout(timer);
    return code;
  }
}

// Issue 15: docs/bandwidth.md section 1, run command by command with `npx chit` on the e2e stack, with
// the toy server, the tunnel and the local proxy on free ports instead of 3000, 1080 and 1081.
describe('docs/bandwidth.md section 1', function () {
  this.timeout(300_000);
  const doc = readFileSync(path.join(ROOT, 'docs', 'bandwidth.md'), 'utf8');
  /** A command line of docs/bandwidth.md, checked to be there as written. */
  const documented = (line: string) => {
    assert.ok(doc.includes(line), `docs/bandwidth.md no longer says: ${line}`);
    return line;
  };
  const TOY = documented(
    `node -e "require('http').createServer((req, res) => res.end(Buffer.alloc(10485760))).listen(3000)" &`,
  );
  const PROVIDE = documented(
    'npx chit provide proxy --price-per-minute 0.01 --price-per-gib 1 --interval 5 --allow-private-targets',
  );
  const CONNECT = documented('npx chit connect tcp://127.0.0.1:1080 --max-price-per-minute 0.01 --max-price-per-gib 1');
  const CURLS = [
    documented("curl --socks5-hostname 127.0.0.1:1081 -o /dev/null -w '%{size_download}\\n' http://127.0.0.1:3000/"),
    documented("curl -p --proxy http://127.0.0.1:1081 -o /dev/null -w '%{size_download}\\n' http://127.0.0.1:3000/"),
  ];
  for (const line of ['npx chit identity new', 'npx chit identity fund', 'npx chit deposit 10', 'npx chit balance']) {
    documented(line);
  }
  documented('export CHIT_KEYSTORE=~/chit-consumer.json CHIT_STORE=~/chit-consumer-store');

  let stack: Stack;
  let home: string;
  let ports: { toy: number; tunnel: number; local: number };
  const running: Background[] = [];
  /** What chit connect said it spent, when it disconnected. */
  let spent = Number.NaN;
  /** A documented line on the test's ports. */
  const onPorts = (line: string) =>
    line
      .replaceAll('.listen(3000)', `.listen(${ports.toy})`)
      .replaceAll('127.0.0.1:3000', `127.0.0.1:${ports.toy}`)
      .replaceAll('127.0.0.1:1080', `127.0.0.1:${ports.tunnel}`)
      .replaceAll('127.0.0.1:1081', `127.0.0.1:${ports.local}`);
  const env = (who: 'provider' | 'consumer'): Record<string, string> => ({
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, `${who}-config`),
    CHIT_RPC_URL: stack.chain.url,
    CHIT_HUB_URL: stack.hub.url,
    CHIT_PASSWORD: PASSWORD,
    ...(who === 'consumer'
      ? { CHIT_KEYSTORE: path.join(home, 'chit-consumer.json'), CHIT_STORE: path.join(home, 'chit-consumer-store') }
      : {}),
  });
  /** Runs a documented `npx chit …` line to its end, as `who`. */
  const chit = async (line: string, who: 'provider' | 'consumer') => {
    const job = new Background('sh', ['-c', onPorts(line)], env(who));
    const code = await new Promise((resolve) => job.child.once('exit', resolve));
    assert.equal(code, 0, `${line}:\n${job.output}`);
    return job.output;
  };
  const started = (job: Background, text: string, what: string) =>
    until(
      what,
      async () => {
        if (job.child.exitCode !== null) throw new Error(`${what}: exited\n${job.output}`);
        return job.output.includes(text);
      },
      90_000,
    ).catch((error: Error) => {
      throw new Error(`${error.message}\n${job.output}`);
    });

  before(async () => {
    stack = await startStack();
    home = mkdtempSync(path.join(tmpdir(), 'chit-bandwidth-doc-'));
    ports = { toy: await freePort(), tunnel: await freePort(), local: await freePort() };
  });

  after(async () => {
    for (const job of running.reverse()) await job.interrupt();
    await stack?.stop();
    if (home) rmSync(home, { recursive: true, force: true });
  });

  it('the provider: an identity, the toy server and chit provide proxy', async () => {
    await chit('npx chit identity new', 'provider');
    await chit('npx chit identity fund', 'provider');
    const toy = new Background('sh', ['-c', onPorts(TOY).replace(/ &$/, '')], {});
    running.push(toy);
    await until('the toy server', async () => (await fetch(`http://127.0.0.1:${ports.toy}/`)).ok);
    // The tunnel's default port is 1080: here it gets a free one.
    const node = new Background('sh', ['-c', `${PROVIDE} --port ${ports.tunnel}`], env('provider'));
    running.push(node);
    await started(node, 'Press Ctrl-C to stop.', 'chit provide proxy');
    assert.ok(node.output.includes(onPorts('Selling bandwidth at tcp://127.0.0.1:1080\n')), node.output);
    assert.ok(node.output.includes('Price:    0.01 tCHIT per minute, 1 tCHIT per GiB\n'), node.output);
    assert.ok(node.output.includes('Invoices: every 5 s\n'), node.output);
  });

  it('the consumer: its identity and deposit, chit connect, and curl through both proxies', async () => {
    await chit('npx chit identity new', 'consumer');
    await chit('npx chit identity fund', 'consumer');
    await chit('npx chit deposit 10', 'consumer');
    // The local proxy's default port is 1081: here it gets a free one.
    const connect = new Background('sh', ['-c', `${onPorts(CONNECT)} --port ${ports.local}`], env('consumer'));
    running.push(connect);
    await started(connect, 'Local proxy:', 'chit connect');
    assert.ok(
      connect.output.includes(
        onPorts('Local proxy: socks5h://127.0.0.1:1081 (SOCKS5), http://127.0.0.1:1081 (HTTP CONNECT)'),
      ),
      connect.output,
    );
    for (const line of CURLS) {
      const run = await curl(['--silent', ...shellWords(onPorts(line)).slice(1)]);
      assert.equal(run.stdout, '10485760\n', run.stderr);
    }
    // 20 MiB at 1 tCHIT a GiB is 0.01953125 tCHIT: paid with the next invoice (every 5 s).
    await until('a payment for the 20 MiB', async () =>
      [...connect.output.matchAll(/spent ([0-9.]+) tCHIT/g)].some((match) => Number(match[1]) >= 0.01953125),
    );
    assert.match(
      connect.output,
      /0x[0-9a-fA-F]{4}…[0-9a-fA-F]{4} {2}00:00:\d\d {2}↑ 0\.0 MiB ↓ 20\.0 MiB {2}spent 0\.0\d+ tCHIT {2}0\.01 tCHIT\/min/,
    );
    await connect.interrupt(); // Ctrl-C
    assert.doesNotMatch(connect.output, /error:/);
    spent = Number(/Disconnected\. .* spent ([0-9.]+) tCHIT/.exec(connect.output)?.[1]);
  });

  it('the provider: chit balance shows what the hub owes it', async () => {
    const balance = await chit('npx chit balance --json', 'provider');
    const earned = Number(JSON.parse(balance.slice(balance.indexOf('{'))).provider.hub.earned);
    assert.ok(earned >= 0.01953125, String(earned));
    assert.ok(Math.abs(earned - spent) < 1e-5, `earned ${earned}, the consumer spent ${spent}`);
  });
});

/** Splits a one-line shell command on spaces, keeping single-quoted words whole (and unquoting them). */
function shellWords(line: string): string[] {
  return [...line.matchAll(/'([^']*)'|(\S+)/g)].map((match) => (match[1] ?? match[2]!).replaceAll('\\n', '\n'));
}
