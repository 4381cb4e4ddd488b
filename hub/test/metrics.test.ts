import assert from 'node:assert/strict';
import { exchangeOnce } from './support/exchange';
import { startTestStack, type TestStack } from './support/hub';

describe('metrics and the OpenAPI document', () => {
  let stack: TestStack;
  let db: TestStack['db'];
  let hub: TestStack['hub'];
  const routes: { method: string; url: string }[] = [];

  before(async function () {
    this.timeout(120_000);
    stack = await startTestStack('metrics');
    ({ db, hub } = stack);
  });
  after(() => stack?.stop());

  const post = (path: string, body: unknown) =>
    fetch(`${hub.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  const metric = (text: string, name: string) => {
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return line === undefined ? undefined : Number(line.slice(name.length + 1));
  };

  it('counts exchanges and errors, and reports liabilities against the stake', async () => {
    const { info, response: ok } = await exchangeOnce(hub.url, db.pool, 7n);
    assert.equal(ok.status, 200);
    const refused = await post('/v1/exchange', { promise: {} });
    assert.equal(refused.status, 400);

    const response = await fetch(`${hub.url}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    assert.equal(metric(text, 'chit_exchanges_total{outcome="ok"}'), 1);
    assert.equal(metric(text, 'chit_exchanges_total{outcome="repeated"}'), 0);
    assert.equal(metric(text, 'chit_errors_total{code="MALFORMED"}'), 1);
    assert.equal(metric(text, 'chit_exchange_seconds_count'), 2);
    assert.equal(metric(text, 'chit_exchange_queue_depth'), 0);
    assert.equal(metric(text, 'chit_unsettled_liabilities_tokens'), 7);
    assert.equal(metric(text, 'chit_stake_tokens'), Number(info.stake));
    assert.equal(metric(text, 'chit_settlements{status="queued"}'), 0);
    assert.match(text, /^# TYPE chit_settlement_seconds histogram$/m);
    assert.match(text, /^process_cpu_user_seconds_total /m);
  });

  it('serves an OpenAPI 3 document listing every route the app serves', async () => {
    const response = await fetch(`${hub.url}/docs`);
    assert.equal(response.status, 200);
    // biome-ignore lint/suspicious/noExplicitAny: a JSON answer
    const document: any = await response.json();
    assert.match(document.openapi, /^3\.\d+\.\d+$/);
    const printed = hub.app.getHttpAdapter().getInstance().printRoutes({ commonPrefix: false });
    // A tree: "├── /v1/settlements (POST)" then "│   └── /:id (GET, HEAD)"; a child's path extends its parent's.
    const parents: string[] = [];
    for (const line of printed.split('\n')) {
      const match = /── (\S+)(?: \(([^)]+)\))?/.exec(line);
      if (!match) continue;
      const depth = Math.floor(match.index / 4);
      const url = (parents[depth - 1] ?? '') + match[1];
      parents[depth] = url;
      // HEAD answers as GET; OPTIONS (`*`) is the CORS preflight of every path.
      for (const method of (match[2] ?? '').split(', ').filter((m) => m && m !== 'HEAD' && m !== 'OPTIONS')) {
        routes.push({ method, url });
      }
    }
    assert.ok(routes.length >= 16, `only ${routes.length} routes read from:\n${printed}`);
    for (const { method, url } of routes) {
      const path = url.replace(/:(\w+)/g, '{$1}');
      const operation = document.paths[path]?.[method.toLowerCase()];
      assert.ok(operation, `${method} ${path} is not in /docs`);
      assert.ok(operation.responses, `${method} ${path} has no responses`);
    }
    assert.equal(routes.length, Object.values(document.paths).flatMap((p) => Object.keys(p as object)).length);
    // The error body every refusal shares.
    assert.deepEqual(document.components.schemas.Error.required, ['code', 'message', 'details']);
    assert.equal(
      document.paths['/v1/exchange'].post.responses['400'].content['application/json'].schema.$ref,
      '#/components/schemas/Error',
    );
  });
});
