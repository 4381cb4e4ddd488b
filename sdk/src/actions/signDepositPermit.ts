import type { Address, Hex } from 'viem';
import { getBlock, readContract, signTypedData } from 'viem/actions';
import type { ChitError } from '../errors/base.js';
import type { ContractCallError } from '../errors/contract.js';
import { chitTokenAbi, hubAbi } from '../generated/abis.js';
import { guard } from './internal/guard.js';
import { requireAccount } from './internal/requireAccount.js';
import type { AccountParameter, ChitClient } from './types.js';

/**
 * Parameters of {@link signDepositPermit}.
 *
 * @example
 * const parameters: SignDepositPermitParameters = { hub, amount: parseEther('10') };
 */
export interface SignDepositPermitParameters extends AccountParameter {
  /** The hub to deposit into (the permit's spender). */
  hub: Address;
  /** Tokens to deposit. */
  amount: bigint;
  /** Last timestamp (seconds) at which the permit is valid; when omitted, one hour after the latest
   * block's timestamp (or this machine's clock, if that is later): the token checks block time. */
  deadline?: bigint | undefined;
  /** The hub's token; read from the hub when omitted. */
  token?: Address | undefined;
  /** The owner's permit nonce at the token; read from the token when omitted. */
  nonce?: bigint | undefined;
}

/**
 * A consumer's EIP-2612 permit for a deposit, ready for anyone to submit with {@link depositWithPermit}.
 *
 * @example
 * const permit: SignedDepositPermit = await signDepositPermit(consumerClient, { hub, amount });
 * await fetch(relayerUrl, { method: 'POST', body: JSON.stringify(permit, (_, v) => (typeof v === 'bigint' ? `${v}` : v)) });
 */
export interface SignedDepositPermit {
  hub: Address;
  token: Address;
  /** The token owner, whose channel is credited. */
  consumer: Address;
  amount: bigint;
  deadline: bigint;
  nonce: bigint;
  signature: Hex;
}

/**
 * What {@link signDepositPermit} returns.
 *
 * @example
 * const result: SignDepositPermitReturnType = await signDepositPermit(consumerClient, {
 *   hub,
 *   amount: parseEther('10'),
 * });
 */
export type SignDepositPermitReturnType = SignedDepositPermit;

/**
 * What {@link signDepositPermit} throws.
 *
 * @example
 * try {
 *   await signDepositPermit(consumerClient, { hub, amount: parseEther('10') });
 * } catch (e) {
 *   console.error((e as SignDepositPermitErrorType).shortMessage);
 * }
 */
export type SignDepositPermitErrorType = ChitError | ContractCallError;

const PERMIT_VALIDITY_SECONDS = 3600n;

const PERMIT_TYPES = {
  Permit: [
    { name: 'owner', type: 'address' },
    { name: 'spender', type: 'address' },
    { name: 'value', type: 'uint256' },
    { name: 'nonce', type: 'uint256' },
    { name: 'deadline', type: 'uint256' },
  ],
} as const;

/**
 * Signs the consumer's EIP-2612 permit letting `hub` take `amount` of its tokens, with the token's own
 * EIP-712 domain (read from its EIP-5267 `eip712Domain()`). Sends nothing: submit it with
 * {@link depositWithPermit}, from the consumer's account or a relayer's, so a consumer without gas
 * money can deposit.
 *
 * @example
 * const permit = await signDepositPermit(consumerClient, { hub, amount: parseEther('10') });
 * const { hash } = await depositWithPermit(relayerClient, { permit });
 */
export async function signDepositPermit(
  client: ChitClient,
  parameters: SignDepositPermitParameters,
): Promise<SignDepositPermitReturnType> {
  const account = requireAccount(client, parameters.account);
  const { hub, amount } = parameters;
  const token =
    parameters.token ?? (await guard(() => readContract(client, { address: hub, abi: hubAbi, functionName: 'token' })));
  const [[, name, version, chainId, verifyingContract], nonce] = await guard(() =>
    Promise.all([
      readContract(client, { address: token, abi: chitTokenAbi, functionName: 'eip712Domain' }),
      parameters.nonce ??
        readContract(client, { address: token, abi: chitTokenAbi, functionName: 'nonces', args: [account.address] }),
    ]),
  );
  const deadline = parameters.deadline ?? (await defaultDeadline(client));
  const signature = await guard(() =>
    signTypedData(client, {
      account,
      domain: { name, version, chainId, verifyingContract },
      types: PERMIT_TYPES,
      primaryType: 'Permit',
      message: { owner: account.address, spender: hub, value: amount, nonce, deadline },
    }),
  );
  return { hub, token, consumer: account.address, amount, deadline, nonce, signature };
}

/** One hour of block time from now: the chain's clock can run ahead of this machine's (a test chain
 * whose time was moved), and the token compares the deadline with the block's timestamp. */
async function defaultDeadline(client: ChitClient): Promise<bigint> {
  const { timestamp } = await guard(() => getBlock(client, { blockTag: 'latest' }));
  const local = BigInt(Math.floor(Date.now() / 1000));
  return (timestamp > local ? timestamp : local) + PERMIT_VALIDITY_SECONDS;
}
