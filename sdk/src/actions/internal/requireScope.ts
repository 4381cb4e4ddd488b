import { type Address, isAddressEqual } from 'viem';
import { ChitError } from '../../errors/base.js';
import type { HubScope } from '../../protocol/types.js';
import type { ChitClient } from '../types.js';

/** Refuses a signed message meant for another hub or chain than the one it is about to be sent to. */
export function requireScope(client: ChitClient, hub: Address, scope: HubScope, what: string): void {
  if (!isAddressEqual(scope.hub, hub)) {
    throw new ChitError('HUB_MISMATCH', `The ${what} is for the hub ${scope.hub}, not ${hub}`);
  }
  if (client.chain && client.chain.id !== scope.chainId) {
    throw new ChitError('CHAIN_MISMATCH', `The ${what} is for chain ${scope.chainId}, not ${client.chain.id}`);
  }
}
