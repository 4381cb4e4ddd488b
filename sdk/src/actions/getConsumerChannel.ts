import type { Address } from 'viem';
import { multicall } from 'viem/actions';
import type { ContractCallError } from '../errors/contract.js';
import { hubAbi } from '../generated/abis.js';
import { guard } from './internal/guard.js';
import type { ChitClient } from './types.js';

/**
 * Parameters of {@link getConsumerChannel}.
 *
 * @example
 * const parameters: GetConsumerChannelParameters = { hub, consumer };
 */
export interface GetConsumerChannelParameters {
  /** The hub. */
  hub: Address;
  /** The consumer. */
  consumer: Address;
}

/**
 * A consumer's channel at a hub.
 *
 * @example
 * const { balance, settled, exit }: ConsumerChannel = await getConsumerChannel(publicClient, { hub, consumer });
 * const promisable = balance - (exit?.amount ?? 0n);
 */
export interface ConsumerChannel {
  /** Tokens in the channel not yet settled to the hub. */
  balance: bigint;
  /** The highest promise total settled so far: the next promise must be above it to be worth anything. */
  settled: bigint;
  /** The pending exit, or null: `amount` leaves the channel once `readyAt` (unix seconds) has passed. */
  exit: { amount: bigint; readyAt: bigint } | null;
}

/**
 * What {@link getConsumerChannel} returns.
 *
 * @example
 * const result: GetConsumerChannelReturnType = await getConsumerChannel(publicClient, { hub, consumer });
 */
export type GetConsumerChannelReturnType = ConsumerChannel;

/**
 * What {@link getConsumerChannel} throws.
 *
 * @example
 * try {
 *   await getConsumerChannel(publicClient, { hub, consumer });
 * } catch (e) {
 *   console.error((e as GetConsumerChannelErrorType).shortMessage);
 * }
 */
export type GetConsumerChannelErrorType = ContractCallError;

/**
 * Reads a consumer's channel at a hub (balance, settled total, pending exit) in one call, at one block.
 *
 * @example
 * const { balance, settled, exit } = await getConsumerChannel(publicClient, { hub, consumer });
 * if (exit) console.log(`${exit.amount} leaves at ${new Date(Number(exit.readyAt) * 1000)}`);
 */
export async function getConsumerChannel(
  client: ChitClient,
  parameters: GetConsumerChannelParameters,
): Promise<GetConsumerChannelReturnType> {
  const { hub, consumer } = parameters;
  const [channel, exit] = await guard(() =>
    multicall(client, {
      allowFailure: false,
      deployless: !client.chain?.contracts?.multicall3,
      contracts: [
        { address: hub, abi: hubAbi, functionName: 'consumerChannel', args: [consumer] },
        { address: hub, abi: hubAbi, functionName: 'exitRequest', args: [consumer] },
      ],
    }),
  );
  return {
    balance: channel.balance,
    settled: channel.settled,
    exit: exit.readyAt === 0n ? null : { amount: exit.amount, readyAt: exit.readyAt },
  };
}
