import { getConsumerChannel, type HubScope, hubAbi, signInstantExit, verifyInstantExitRequest } from '@chit/sdk';
import { nativeVerifier } from '@chit/sdk/node';
import { getAddress, type LocalAccount } from 'viem';
import { getBlock, readContract } from 'viem/actions';
import { available } from '../books/consumer-money';
import type { ChainService } from '../chain/chain.service';
import type { Hex } from '../db/bytes';
import { decodeWire } from '../errors/decode-wire';
import { HubError } from '../errors/hub-error';
import type { SettlementRepository } from '../repositories/settlement.repository';

/** A used instant exit whose `exited` event never came is released after this long (the follower lags less). */
const USED_EXIT_RELEASE_MS = 3_600_000;

/** How far an instant-exit request's `issuedAt` may be from the hub's clock (as for recovery requests). */
const REQUEST_WINDOW_SECONDS = 300n;

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
    private readonly repository: SettlementRepository,
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
  async cosign(body: unknown, now = BigInt(Math.floor(Date.now() / 1000))) {
    const request = decodeWire('instantExitRequest', body);
    const { amount, issuedAt } = request;
    if (!verifyInstantExitRequest({ ...this.scope, ...request }, this.verifier)) {
      throw new HubError('INVALID_SIGNATURE', 'The instant-exit request is not signed by its consumer', {
        consumer: request.consumer,
      });
    }
    const age = now - issuedAt;
    if (age > REQUEST_WINDOW_SECONDS || age < -REQUEST_WINDOW_SECONDS) {
      throw new HubError('STALE_REQUEST', 'Sign a new instant-exit request: issuedAt must be within 5 minutes of now', {
        issuedAt: issuedAt.toString(),
        now: now.toString(),
      });
    }
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
    const validity = BigInt(this.validitySeconds);
    const answer = (record: { amount: bigint; deadline: bigint; signature: Hex }) => ({
      consumer: getAddress(consumer),
      amount: record.amount,
      nonce,
      deadline: record.deadline,
      signature: record.signature,
    });
    return this.repository.reserveInstantExit(consumer, nonce, async (state) => {
      if (!state) {
        const checksummed = getAddress(consumer);
        throw new HubError('UNKNOWN_CONSUMER', `${checksummed} has no channel at this hub`, { consumer: checksummed });
      }
      const existing = state.existing?.status === 'reserved' ? state.existing : undefined;
      if (existing && existing.amount === amount && existing.deadline - chainNow > validity / 2n) {
        return { result: answer(existing) };
      }
      // The books (the follower's) and the chain may differ by the confirmations: take the worse of each.
      // What is left is the consumer's money (books/consumer-money.ts), less other co-signed exits.
      const free = available({
        balance: min(state.balance, channel.balance),
        settled: max(state.settled, channel.settled),
        signedTotal: state.signedTotal,
        credited: state.credited,
        exitAmount: max(state.exitAmount, channel.exit?.amount ?? 0n),
        exitReserved: state.exitReserved - (existing?.reserved ?? 0n),
      });
      if (amount > free) {
        throw new HubError('OVERSPEND', 'The consumer asks for more than its channel holds beyond what it owes', {
          amount: amount.toString(),
          available: free.toString(),
        });
      }
      const deadline = chainNow + validity;
      const signature = await signInstantExit(this.operator, { ...this.scope, consumer, amount, nonce, deadline });
      // Another signature for this nonce may still be used instead: reserve the larger of the two.
      const reserved = max(amount, existing?.reserved ?? 0n);
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
    const open = await this.repository.openInstantExits(consumer);
    if (open.length === 0) return;
    const spent = await readContract(this.chain.client, {
      address: this.scope.hub,
      abi: hubAbi,
      functionName: 'nonces',
      args: [consumer],
      blockNumber: block,
    });
    for (const reservation of open) {
      if (reservation.nonce < spent) await this.repository.releaseInstantExit(consumer, reservation.nonce);
    }
  }

  /**
   * Instant-exit reservations: one whose deadline passed with its nonce unspent can never be used and
   * is released; one whose nonce was spent is marked used and released by {@link onExited} (or, if
   * that event was missed, after an hour, by when the follower has long applied it).
   */
  async sweep(): Promise<void> {
    const open = await this.repository.openInstantExits();
    if (open.length === 0) return;
    const head = await getBlock(this.chain.client, { blockTag: 'latest' });
    for (const reservation of open) {
      const nonce = await readContract(this.chain.client, {
        address: this.scope.hub,
        abi: hubAbi,
        functionName: 'nonces',
        args: [reservation.consumer],
        blockNumber: head.number,
      });
      if (nonce > reservation.nonce) {
        if (reservation.status === 'reserved')
          await this.repository.markInstantExitUsed(reservation.consumer, reservation.nonce);
        else if (Date.now() - reservation.updatedAt.getTime() > USED_EXIT_RELEASE_MS) {
          await this.repository.releaseInstantExit(reservation.consumer, reservation.nonce);
        }
      } else if (head.timestamp > reservation.deadline) {
        await this.repository.releaseInstantExit(reservation.consumer, reservation.nonce);
      }
    }
  }
}

const min = (a: bigint, b: bigint) => (a < b ? a : b);
const max = (a: bigint, b: bigint) => (a > b ? a : b);
