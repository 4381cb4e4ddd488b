import { hubAbi, registryAbi } from '@chit/sdk';
import type { Address, PublicClient } from 'viem';
import type { Hex } from '../../db/bytes';
import type { ChainState } from '../../repositories/chain.repository';

/** Accounts whose state to read. */
export interface AccountSet {
  consumers: Hex[];
  providers: Hex[];
  identities: Hex[];
}

/**
 * Reads the authoritative state of accounts from the Hub and Registry contracts at one block, in one
 * multicall (deployless, so it works on chains without Multicall3). Blocks older than what the RPC
 * keeps state for (a full node: the last 128) need an archive RPC.
 */
export class ChainStateReader {
  constructor(
    private readonly client: PublicClient,
    private readonly contracts: { hub: Address; registry: Address },
  ) {}

  async at(blockNumber: bigint, accounts: AccountSet): Promise<ChainState> {
    const { consumers, providers, identities } = accounts;
    const state: ChainState = { consumers: [], providers: [], identities: [] };
    if (consumers.length + providers.length + identities.length === 0) return state;
    // Before a contract existed (a rewind to a block before it was deployed) its accounts are empty.
    const [hubLive, registryLive] = await Promise.all([
      consumers.length + providers.length > 0 ? this.hasCode(this.contracts.hub, blockNumber) : false,
      identities.length > 0 ? this.hasCode(this.contracts.registry, blockNumber) : false,
    ]);
    const hub = { address: this.contracts.hub, abi: hubAbi } as const;
    const registry = { address: this.contracts.registry, abi: registryAbi } as const;
    const calls = [
      ...(hubLive
        ? consumers.flatMap((consumer) => [
            { ...hub, functionName: 'consumerChannel', args: [consumer] } as const,
            { ...hub, functionName: 'exitRequest', args: [consumer] } as const,
          ])
        : []),
      ...(hubLive ? providers.map((provider) => ({ ...hub, functionName: 'providerSettled', args: [provider] })) : []),
      ...(registryLive
        ? identities.flatMap((identity) => [
            { ...registry, functionName: 'isRegistered', args: [identity] } as const,
            { ...registry, functionName: 'beneficiaryOf', args: [identity] } as const,
          ])
        : []),
    ];
    const results =
      calls.length === 0
        ? []
        : ((await this.client.multicall({
            contracts: calls,
            allowFailure: false,
            deployless: true,
            blockNumber,
          })) as unknown[]);
    let next = 0;
    const take = <T>(): T => results[next++] as T;
    for (const address of consumers) {
      if (!hubLive) {
        state.consumers.push({ address, balance: 0n, settled: 0n, exitAmount: 0n, exitReadyAt: 0n });
        continue;
      }
      const channel = take<{ balance: bigint; settled: bigint }>();
      const exit = take<{ amount: bigint; readyAt: bigint }>();
      state.consumers.push({
        address,
        balance: channel.balance,
        settled: channel.settled,
        exitAmount: exit.readyAt === 0n ? 0n : exit.amount,
        exitReadyAt: exit.readyAt,
      });
    }
    for (const address of providers) {
      state.providers.push({ address, settled: hubLive ? take<bigint>() : 0n });
    }
    for (const address of identities) {
      if (!registryLive) {
        state.identities.push({ address, beneficiary: null });
        continue;
      }
      const registered = take<boolean>();
      const beneficiary = take<Address>();
      state.identities.push({ address, beneficiary: registered ? (beneficiary.toLowerCase() as Hex) : null });
    }
    return state;
  }

  private async hasCode(address: Address, blockNumber: bigint): Promise<boolean> {
    const code = await this.client.getCode({ address, blockNumber });
    return code !== undefined && code !== '0x';
  }
}
