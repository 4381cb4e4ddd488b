import type { Account, Address, Chain, Client, Hash, Transport } from 'viem';

/**
 * The viem client every action takes: a PublicClient for reads; for writes and signatures, a
 * WalletClient (or any client with an account), whose transport also answers reads.
 *
 * @example
 * const client: ChitClient = createWalletClient({ account, chain: foundry, transport: http() });
 * await deposit(client, { hub, amount: parseEther('10') });
 */
export type ChitClient = Client<Transport, Chain | undefined, Account | undefined>;

/**
 * The account that signs or sends: the client's own account unless one is given.
 *
 * @example
 * // a client without an account, and the account given per call
 * await cancelExit(publicClient, { hub, account: privateKeyToAccount(key) });
 */
export interface AccountParameter {
  /** Signs or sends instead of the client's account: a viem Account, or an address the node holds. */
  account?: Account | Address | undefined;
}

/**
 * What every write action returns: the hash of the transaction it sent (not yet mined).
 *
 * @example
 * const { hash }: WriteReturnType = await requestExit(walletClient, { hub, amount });
 * await waitForTransaction(walletClient, { hash });
 */
export interface WriteReturnType {
  hash: Hash;
}
