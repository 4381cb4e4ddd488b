import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { hubErrorCodes } from '../src/index.js';

// One error-code table: the SDK's hubErrorCodes, from which the hub takes its HTTP statuses
// (hub/src/errors/hub-error.ts). docs/protocol.md's table must say the same, code by code.
describe('hub error codes', () => {
  it('docs/protocol.md lists exactly the codes of hubErrorCodes, with their status and retry rule', () => {
    const doc = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');
    const rows = [...doc.matchAll(/^\| `([A-Z_]+)` \| (\d{3}) \| (yes|no) \|/gm)].map(([, code, status, retry]) => ({
      code,
      status: Number(status),
      retryable: retry === 'yes',
    }));
    const table = Object.entries(hubErrorCodes).map(([code, { status, retryable }]) => ({ code, status, retryable }));
    const byCode = (a: { code?: string }, b: { code?: string }) => a.code!.localeCompare(b.code!);
    assert.deepEqual(rows.sort(byCode), table.sort(byCode));
  });
});
