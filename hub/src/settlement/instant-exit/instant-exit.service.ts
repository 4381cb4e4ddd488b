import {
  getConsumerChannel,
  type HubScope,
  hubAbi,
  type InstantExitRequestBody,
  signInstantExit,
  verifyInstantExitRequest,
} from '@chit/sdk';
import { nativeVerifier } from '@chit/sdk/node';
import { getAddress, type LocalAccount } from 'viem';
import { getBlock, readContract } from 'viem/actions';
import type { ChainService } from '../../chain/chain.service';
import type { Hex } from '../../db/bytes';
import { HubError } from '../../errors/hub-error';
import type { InstantExitRepository } from './instant-exit.repository';
import { decideInstantExit, max, requireFreshRequest, sweepAction } from './instant-exit.rules';

/**
 * Instant exits: the operator's co-signature, given only for what the consumer does not owe, and the
 * reservation that keeps the exchange from crediting that amount until the exit is applied on-chain
 * or can no longer be used (instant_exits, consumers.exit_reserved).
 */
export class InstantExitService {
  private readonly verifier = nativeVerifier();

  constructor(
    private readonly scope: HubScope,
    private readonly chain: ChainService,
    private readonly repository: InstantExitRepository,
    private readonly operator: LocalAccount,
    private readonly validitySeconds: number,
  ) {}

  /**
   * `POST /v1/exits/instant`: the operator's InstantExit co-signature for the consumer's current exit
   * nonce, asked by the consumer itself (an `InstantExitRequest` it signed in this hub's domain, at most
   * five minutes off the hub's clock: otherwise INVALID_SIGNATURE or STALE_REQUEST, and nothing is
   * reserved), given only for the consumer's available money (books/consumer-money.ts: balance - pending
   * exit - other co-signed exits - (highest signed total - settled)). The amount is reserved
   * (consumers.exit_reserved) in the same transaction that checks it, under the consumer's row lock, so
   * no exchange credits it meanwhile.
   */
  async cosign(request: InstantExitRequestBody, now = BigInt(Math.floor(Date.now() / 1000))) {
    const { amount, issuedAt } = request;
    if (!verifyInstantExitRequest({ ...this.scope, ...request }, this.verifier)) {
      throw new HubError('INVALID_SIGNATURE', 'The instant-exit request is not signed by its consumer', {
        consumer: request.consumer,
      });
    }
    requireFreshRequest(issuedAt, now);
    const consumer = request.consumer.toLowerCase() as Hex;
    if (amount === 0n) throw new HubError('MALFORMED', 'amount: must be above zero', { path: 'amount' });
    const hub = this.scope.hub;
    const [nonce, channel, head] = await Promise.all([
      readContract(this.chain.client, { address: hub, abi: hubAbi, functionName: 'nonces', args: [consumer] }),
      getConsumerChannel(this.chain.client, { hub, consumer }),
      getBlock(this.chain.client, { blockTag: 'latest' }),
    ]);
    // The contract checks the deadline against block time, which can run ahead of this clock.
    const chainNow = max(now, head.timestamp);
    const answer = (record: { amount: bigint; deadline: bigint; signature: Hex }) => ({
      consumer: getAddress(consumer),
      amount: record.amount,
      nonce,
      deadline: record.deadline,
      signature: record.signature,
    });
    return this.repository.reserve(consumer, nonce, async (state) => {
      const decision = decideInstantExit({
        consumer,
        amount,
        state,
        channel: { balance: channel.balance, settled: channel.settled, exitAmount: channel.exit?.amount ?? 0n },
        chainNow,
        validitySeconds: BigInt(this.validitySeconds),
      });
      if (decision.kind === 'repeat') return { result: answer(decision.existing) };
      const { deadline, reserved } = decision;
      const signature = await signInstantExit(this.operator, { ...this.scope, consumer, amount, nonce, deadline });
      return {
        write: { consumer, nonce, amount, reserved, deadline, signature, status: 'reserved' as const },
        result: answer({ amount, deadline, signature }),
      };
    });
  }

  /**
   * The follower applied an exit of `consumer` at `block` (the books' balance has dropped): instant-exit
   * reservations whose nonce was spent by then no longer need to hold anything back.
   */
  async onExited(consumer: Hex, block: bigint): Promise<void> {
    const open = await this.repository.open(consumer);
    if (open.length === 0) return;
    const spent = await this.nonceOf(consumer, block);
    await this.repository.record(
      open
        .filter((reservation) => reservation.nonce < spent)
        .map(({ nonce }) => ({ consumer, nonce, action: 'release' as const })),
    );
  }

  /**
   * Instant-exit reservations: one whose deadline passed with its nonce unspent can never be used and
   * is released; one whose nonce was spent is marked used and released by {@link onExited} (or, if
   * that event was missed, after an hour, by when the follower has long applied it).
   */
  async sweep(): Promise<void> {
    const open = await this.repository.open();
    if (open.length === 0) return;
    const head = await getBlock(this.chain.client, { blockTag: 'latest' });
    const outcomes: { consumer: Hex; nonce: bigint; action: 'use' | 'release' }[] = [];
    for (const reservation of open) {
      const spent = await this.nonceOf(reservation.consumer, head.number);
      const action = sweepAction(reservation, { spent, timestamp: head.timestamp }, Date.now());
      if (action !== 'keep') outcomes.push({ consumer: reservation.consumer, nonce: reservation.nonce, action });
    }
    await this.repository.record(outcomes);
  }

  /** The consumer's exit nonce at `block`: the nonces below it are spent. */
  private nonceOf(consumer: Hex, block: bigint): Promise<bigint> {
    return readContract(this.chain.client, {
      address: this.scope.hub,
      abi: hubAbi,
      functionName: 'nonces',
      args: [consumer],
      blockNumber: block,
    });
  }
}
