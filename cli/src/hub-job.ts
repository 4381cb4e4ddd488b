import type { HubClient, HubSettlement } from '@chit/sdk';
import type { CliContext } from './context.js';
import { CliError } from './errors.js';

/**
 * Polls a job of the hub's relayer (a settlement or a relayed registration, `GET /v1/settlements/{id}`)
 * until it is confirmed, printing each new state on stderr.
 *
 * @throws {CliError} `RELAY_FAILED` when the hub reports a failure (`failedHint` says what to do
 * instead); `RELAY_PENDING` when it is not confirmed within `timeoutMs`.
 * @example
 * const { txHash } = await waitForHubJob(ctx, hubClient, job.id, 300_000, { failedHint: 'Settle directly.' });
 */
export async function waitForHubJob(
  ctx: CliContext,
  hubClient: HubClient,
  id: string,
  timeoutMs: number,
  options: { failedHint: string; intervalMs?: number },
): Promise<HubSettlement> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const job = await hubClient.settlement(id);
    const state = `${job.status}${job.txHash ? ` in ${job.txHash}` : ''}`;
    if (state !== last) ctx.out.progress(`waiting for the hub's relayer: ${job.kind} ${id} ${state}…`);
    last = state;
    if (job.status === 'confirmed') return job;
    if (job.status === 'failed') {
      throw new CliError(
        'RELAY_FAILED',
        `The hub's relayer failed (${job.kind} ${id}): ${job.error ? `${job.error.message} (${job.error.code})` : 'no reason given'}`,
        options.failedHint,
        { details: job.txHash ? `Its transaction was ${job.txHash}.` : undefined },
      );
    }
    if (Date.now() > deadline) {
      throw new CliError(
        'RELAY_PENDING',
        `The hub's relayer has not confirmed ${job.kind} ${id} within ${Math.round(timeoutMs / 1000)} s (${job.status})`,
        'It may still go through: check `chit balance` or `chit identity show` later before trying again.',
      );
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 500));
  }
}
