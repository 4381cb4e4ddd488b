import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { freePort } from '@chit/devstack';
import { Pool } from 'pg';
import { deleteQueueKeys } from '../../hub/test/support/redis';
import { startLocalChain } from '../../scripts/local-chain';
import { until } from './support/stack';

const ROOT = path.join(__dirname, '..', '..');

/** The shell block of docs/operators.md that follows `marker`. */
function recipe(marker: string): string {
  const doc = readFileSync(path.join(ROOT, 'docs', 'operators.md'), 'utf8');
  const block = /```sh\n([\s\S]*?)```/.exec(doc.slice(doc.indexOf(marker)));
  assert.ok(doc.includes(marker) && block, `docs/operators.md has no sh block after "${marker}"`);
  return block[1]!;
}

// docs/operators.md's api + worker split, pasted into a shell as written; only what names this
// machine's services (the database, the chain's port, the hub ports, the queue prefix) is replaced.
describe('docs/operators.md: the api and worker recipe, run as written', function () {
  this.timeout(180_000);
  let chain: Awaited<ReturnType<typeof startLocalChain>> | undefined;
  let shell: ChildProcess | undefined;
  let output = '';
  let admin: Pool;
  const database = `chit_roles_${randomBytes(6).toString('hex')}`;
  const prefix = `chit-roles-${randomBytes(6).toString('hex')}`;
  let api = '';
  let worker = '';

  before(async () => {
    const [chainPort, apiPort, workerPort] = [await freePort(), await freePort(), await freePort()];
    chain = await startLocalChain(chainPort, 'http://127.0.0.1:8080');
    admin = new Pool({ connectionString: process.env.CHIT_E2E_POSTGRES_URL, max: 1 });
    await admin.query(`CREATE DATABASE ${database}`);
    const databaseUrl = new URL(process.env.CHIT_E2E_POSTGRES_URL!);
    databaseUrl.pathname = `/${database}`;

    const script = recipe('The same split, run here without Docker');
    // The doc's values, each of which must be there to be replaced.
    const replace = (text: string, from: string, to: string) => {
      assert.ok(text.includes(from), `the recipe no longer says ${from}:\n${text}`);
      return text.replaceAll(from, to);
    };
    let run = replace(script, 'postgres://postgres@127.0.0.1:5432/chit_roles', databaseUrl.toString());
    run = replace(run, 'RPC_URL=http://127.0.0.1:8545', `RPC_URL=${chain.anvil.url}`);
    run = replace(run, 'QUEUE_PREFIX=chit-roles', `QUEUE_PREFIX=${prefix}`);
    run = replace(run, '--port 8081', `--port ${apiPort}`);
    run = replace(run, 'PORT=8090', `PORT=${workerPort}`);
    // The doc's hub address is the one a fresh local chain gets.
    assert.ok(run.includes(`HUB_ADDRESS=${chain.deployment.hub.address}`), run);
    api = `http://127.0.0.1:${apiPort}`;
    worker = `http://127.0.0.1:${workerPort}`;

    const env = { ...process.env };
    for (const key of Object.keys(env)) if (key.startsWith('npm_')) delete env[key];
    shell = spawn('bash', ['-c', `${run}\nwait`], {
      cwd: ROOT,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    shell.stdout?.on('data', (chunk) => {
      output += chunk;
    });
    shell.stderr?.on('data', (chunk) => {
      output += chunk;
    });
    await until(
      `both processes of the recipe answer /ready\n${output}`,
      async () => {
        if (shell?.exitCode !== null) throw new Error(`the recipe's shell exited:\n${output}`);
        const ready = await Promise.all([api, worker].map((url) => fetch(`${url}/ready`).catch(() => undefined)));
        return ready.every((answer) => answer?.ok);
      },
      120_000,
    );
  });

  after(async () => {
    if (shell?.pid && shell.exitCode === null) {
      const exited = new Promise((resolve) => shell?.once('exit', resolve));
      process.kill(-shell.pid, 'SIGTERM');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 20_000))]);
    }
    chain?.anvil.process.kill('SIGKILL');
    await admin?.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).catch(() => {});
    await admin?.end();
    await deleteQueueKeys(process.env.CHIT_E2E_REDIS_URL!, prefix).catch(() => {});
  });

  it('the api answers /v1/info and /docs', async () => {
    const info = await (await fetch(`${api}/v1/info`)).json();
    assert.equal(info.hub, chain!.deployment.hub.address);
    assert.equal((await fetch(`${api}/docs`)).status, 200);
  });

  it('the worker answers /health, /ready and /metrics, and 404 on /v1/* and /docs', async () => {
    for (const route of ['/health', '/ready', '/metrics'])
      assert.equal((await fetch(`${worker}${route}`)).status, 200, route);
    for (const route of ['/v1/info', '/docs']) assert.equal((await fetch(`${worker}${route}`)).status, 404, route);
  });
});
