import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { hubEndpoints, hubErrorCodes } from '@chit/sdk';
import { buildOpenApi } from '../src/api/openapi';
import { hubFailureCodes } from '../src/settlement/settlement.types';

const run = promisify(execFile);
const root = resolve(__dirname, '../..');

// The document GET /docs serves, generated from the SDK's endpoints; test/metrics.test.ts checks that it
// lists every route the app serves.
describe('the OpenAPI document', () => {
  // biome-ignore lint/suspicious/noExplicitAny: a JSON document
  const document: any = buildOpenApi();

  it('passes redocly lint with no errors and no unjustified warnings', async function () {
    this.timeout(120_000);
    const dir = mkdtempSync(join(tmpdir(), 'chit-openapi-'));
    try {
      const file = join(dir, 'openapi.json');
      writeFileSync(file, JSON.stringify(document, null, 2));
      const bin = join(root, 'node_modules/@redocly/cli/bin/cli.js');
      const config = join(root, 'redocly.yaml');
      const { stdout, stderr } = await run(
        process.execPath,
        [bin, 'lint', file, '--config', config, '--format', 'json'],
        {
          cwd: dir,
          env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
        },
      ).catch((error: { stdout: string; stderr: string }) => error);
      const report = JSON.parse(stdout.slice(stdout.indexOf('{'))) as {
        totals: { errors: number; warnings: number };
        problems: { ruleId: string; message: string }[];
      };
      const problems = report.problems.map((p) => `${p.ruleId}: ${p.message}`).join('\n');
      assert.equal(report.totals.errors, 0, `${problems}\n${stderr}`);
      assert.equal(report.totals.warnings, 0, problems);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('has one operation per endpoint, each with its operation id and declared security', () => {
    const operations = Object.values(document.paths).flatMap((path) => Object.values(path as object));
    assert.deepEqual(operations.map((operation) => operation.operationId).sort(), Object.keys(hubEndpoints).sort());
    // The history answers a signed-in session (bearer token); every other route needs none.
    for (const operation of operations) {
      const guarded = [
        'getProviderHistory',
        'getProviderConsumers',
        'getProviderSettlements',
        'getConsumerHistory',
        'getConsumerProviders',
        'getHubHistory',
      ];
      assert.deepEqual(
        operation.security,
        guarded.includes(operation.operationId) ? [{ session: [] }] : [],
        operation.operationId,
      );
    }
    assert.deepEqual(document.components.securitySchemes.session, {
      type: 'http',
      scheme: 'bearer',
      description: 'The token of POST /v1/auth/session (Sign-In with Ethereum, EIP-4361), for the history endpoints',
    });
    // A query parameter with a default may be left out; one without is required.
    const history = document.paths['/v1/history/providers/{address}'].get.parameters;
    assert.deepEqual(
      history.map((parameter: { name: string; required: boolean }) => [parameter.name, parameter.required]),
      [
        ['address', true],
        ['from', true],
        ['to', true],
        ['bucket', false],
        ['format', false],
      ],
    );
    // The only ones redocly.yaml lets go without a 4XX answer.
    const no4xx = operations.filter((operation) => !Object.keys(operation.responses).some((s) => s.startsWith('4')));
    assert.deepEqual(no4xx.map((operation) => operation.operationId).sort(), ['health', 'metrics', 'ready']);
  });

  it('answers errors as { code, message, details } with the codes of hubErrorCodes', () => {
    const error = document.components.schemas.Error;
    assert.deepEqual(error.properties.code.enum, Object.keys(hubErrorCodes));
    assert.deepEqual(error.required, ['code', 'message', 'details']);
  });

  it("serves a settlement's error as { code, message } or null, naming the hub's own failure codes", () => {
    const answer = document.components.schemas.GetSettlementAnswer;
    assert.equal(
      document.paths['/v1/settlements/{id}'].get.responses['200'].content['application/json'].schema.$ref,
      '#/components/schemas/GetSettlementAnswer',
    );
    const [error, none] = answer.properties.error.anyOf;
    assert.deepEqual(none, { type: 'null' });
    assert.equal(error.type, 'object');
    assert.equal(error.additionalProperties, false);
    assert.deepEqual(error.required, ['code', 'message']);
    assert.equal(error.properties.message.type, 'string');
    for (const code of ['HubInsufficientFreeFunds', ...Object.keys(hubFailureCodes)]) {
      assert.match(code, new RegExp(error.properties.code.pattern));
      assert.ok(error.properties.code.description.includes(code), code);
    }
  });

  it('describes requests in their wire form: amounts as decimal strings, strict objects', () => {
    const body = document.components.schemas.RequestSettlementRequest;
    assert.equal(body.additionalProperties, false);
    assert.equal(body.properties.relayerFee.type, 'string');
    assert.equal(body.properties.relayerFee.pattern, '^(0|[1-9][0-9]{0,77})$');
    assert.equal(
      document.paths['/v1/settlements'].post.requestBody.content['application/json'].schema.$ref,
      '#/components/schemas/RequestSettlementRequest',
    );
  });
});
