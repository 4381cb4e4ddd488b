import { hubAbi, registryAbi } from '@chit/sdk';
import { type AbiEvent, type Address, getAbiItem, keccak256, type Log } from 'viem';
import type { Hex } from '../../db/bytes';
import type { ChainEventMap } from '../chain-events';

// What one block range of logs means for the books: which accounts to re-read, which R became
// public, and which ChainEvents to emit once the range is committed. Pure, in log order.

const hubEvent = (name: HubEventName) => getAbiItem({ abi: hubAbi, name }) as AbiEvent;
const registryEvent = (name: 'IdentityRegistered' | 'BeneficiaryChanged') =>
  getAbiItem({ abi: registryAbi, name }) as AbiEvent;

type HubEventName =
  | 'Deposited'
  | 'ConsumerSettled'
  | 'ProviderSettled'
  | 'ExitRequested'
  | 'ExitCancelled'
  | 'ExitFinalized'
  | 'InstantExited';

/** The events the follower reads: the Hub's channel events and the Registry's identity events. */
export const FOLLOWED_EVENTS: readonly AbiEvent[] = [
  hubEvent('Deposited'),
  hubEvent('ConsumerSettled'),
  hubEvent('ProviderSettled'),
  hubEvent('ExitRequested'),
  hubEvent('ExitCancelled'),
  hubEvent('ExitFinalized'),
  hubEvent('InstantExited'),
  registryEvent('IdentityRegistered'),
  registryEvent('BeneficiaryChanged'),
];

/** A decoded log as viem's getLogs returns it for {@link FOLLOWED_EVENTS}. */
export type FollowedLog = Log<bigint, number, false> & {
  eventName: string;
  args: Record<string, unknown>;
};

/** One ChainEvent to emit, with its arguments. */
export type Emission = { [K in keyof ChainEventMap]: { name: K; args: ChainEventMap[K] } }[keyof ChainEventMap];

export interface RangePlan {
  consumers: Hex[];
  providers: Hex[];
  identities: Hex[];
  /** R revealed by settlements, with its hashlock. */
  preimages: { hashlock: Hex; preimage: Hex }[];
  emissions: Emission[];
}

const lower = (value: unknown): Hex => (value as string).toLowerCase() as Hex;
const big = (value: unknown): bigint => value as bigint;

/** Reads a range's logs (any order; logs from other addresses are ignored). */
export function planRange(logs: readonly FollowedLog[], contracts: { hub: Address; registry: Address }): RangePlan {
  const hub = contracts.hub.toLowerCase();
  const registry = contracts.registry.toLowerCase();
  const consumers = new Set<Hex>();
  const providers = new Set<Hex>();
  const identities = new Set<Hex>();
  const preimages = new Map<Hex, Hex>();
  const emissions: Emission[] = [];
  const ordered = [...logs].sort((a, b) =>
    a.blockNumber === b.blockNumber ? a.logIndex - b.logIndex : a.blockNumber < b.blockNumber ? -1 : 1,
  );
  for (const log of ordered) {
    const { args } = log;
    const block = log.blockNumber;
    const txHash = lower(log.transactionHash);
    const from = log.address.toLowerCase();
    if (from === registry) {
      if (log.eventName === 'IdentityRegistered' || log.eventName === 'BeneficiaryChanged') {
        identities.add(lower(args.identity));
      }
      continue;
    }
    if (from !== hub) continue;
    switch (log.eventName) {
      case 'Deposited': {
        const consumer = lower(args.consumer);
        consumers.add(consumer);
        emissions.push({
          name: 'deposited',
          args: [{ consumer, amount: big(args.amount), balance: big(args.balance), block }],
        });
        break;
      }
      case 'ConsumerSettled': {
        const consumer = lower(args.consumer);
        const preimage = lower(args.preimage);
        consumers.add(consumer);
        preimages.set(keccak256(preimage), preimage);
        emissions.push({
          name: 'consumerSettled',
          args: [{ consumer, total: big(args.total), amount: big(args.amount), preimage, txHash, block }],
        });
        break;
      }
      case 'ProviderSettled': {
        const provider = lower(args.provider);
        const preimage = lower(args.preimage);
        providers.add(provider);
        preimages.set(keccak256(preimage), preimage);
        emissions.push({
          name: 'providerSettled',
          args: [{ provider, total: big(args.total), amount: big(args.amount), preimage, txHash, block }],
        });
        break;
      }
      case 'ExitRequested': {
        const consumer = lower(args.consumer);
        consumers.add(consumer);
        emissions.push({
          name: 'exitRequested',
          args: [{ consumer, amount: big(args.amount), readyAt: big(args.readyAt), block }],
        });
        break;
      }
      case 'ExitCancelled':
        consumers.add(lower(args.consumer));
        break;
      case 'ExitFinalized':
      case 'InstantExited': {
        const consumer = lower(args.consumer);
        consumers.add(consumer);
        emissions.push({ name: 'exited', args: [{ consumer, amount: big(args.amount), block }] });
        break;
      }
    }
  }
  return {
    consumers: [...consumers],
    providers: [...providers],
    identities: [...identities],
    preimages: [...preimages].map(([hashlock, preimage]) => ({ hashlock, preimage })),
    emissions,
  };
}
