import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HubClient, HubSettlement } from '@chit/sdk';
import type { CliContext } from '../src/context.js';
import { CliError } from '../src/errors.js';
import { waitForHubJob } from '../src/hub-job.js';

/** A hub client whose `settlement(id)` answers each of `answers` in turn, then the last again. */
function hubAnswering(answers: HubSettlement[]): HubClient {
  let next = 0;
  return {
    settlement: async () => answers[Math.min(next++, answers.length - 1)]!,
  } as unknown as HubClient;
}

const ctx = { out: { progress: () => {} } } as unknown as CliContext;
const job = (status: HubSettlement['status'], error: HubSettlement['error'] = null): HubSettlement => ({
  id: 'job-1',
  kind: 'settlement',
  status,
  txHash: null,
  error,
});

describe('waitForHubJob', () => {
  it('returns the job once the relayer confirms it', async () => {
    const done = await waitForHubJob(ctx, hubAnswering([job('queued'), job('confirmed')]), 'job-1', 5_000, {
      failedHint: 'Settle directly.',
      intervalMs: 1,
    });
    assert.equal(done.status, 'confirmed');
  });

  it("names the hub's failure code and message when the relayer fails", async () => {
    const failed = job('failed', { code: 'HubInsufficientFreeFunds', message: 'the hub lacks free funds' });
    await assert.rejects(
      waitForHubJob(ctx, hubAnswering([failed]), 'job-1', 5_000, { failedHint: 'Settle directly.', intervalMs: 1 }),
      (error: unknown) => {
        assert.ok(error instanceof CliError);
        assert.equal(error.code, 'RELAY_FAILED');
        assert.equal(
          error.shortMessage,
          "The hub's relayer failed (settlement job-1): the hub lacks free funds (HubInsufficientFreeFunds)",
        );
        assert.equal(error.hint, 'Settle directly.');
        return true;
      },
    );
  });

  it('says no reason was given when the failure has none', async () => {
    await assert.rejects(
      waitForHubJob(ctx, hubAnswering([job('failed')]), 'job-1', 5_000, { failedHint: 'x', intervalMs: 1 }),
      /no reason given/,
    );
  });
});
