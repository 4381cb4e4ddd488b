import { type Address, encodeFunctionData, isAddressEqual } from 'viem';
import { readContract, simulateCalls, simulateContract, writeContract } from 'viem/actions';
import { type ContractCallError, type ContractRevertError, decodeContractError } from '../errors/contract.js';
import { chitTokenAbi, hubAbi } from '../generated/abis.js';
import { guard } from './internal/guard.js';
import { requireAccount } from './internal/requireAccount.js';
import type { AccountParameter, ChitClient, WriteReturnType } from './types.js';
import { waitForTransaction } from './waitForTransaction.js';

/**
 * Parameters of {@link deposit}.
 *
 * @example
 * const parameters: DepositParameters = { hub, amount: parseEther('10') };
 */
export interface DepositParameters extends AccountParameter {
  /** The hub. */
  hub: Address;
  /** Tokens to deposit. */
  amount: bigint;
  /** The channel credited; the sending account's own when omitted (otherwise `depositFor`). */
  consumer?: Address | undefined;
  /** The hub's token; read from the hub when omitted. */
  token?: Address | undefined;
}

/**
 * What {@link deposit} returns.
 *
 * @example
 * const result: DepositReturnType = await deposit(consumerClient, { hub, amount: parseEther('10') });
 */
export interface DepositReturnType extends WriteReturnType {
  /** The `approve` transaction sent first (and waited for) when the hub's allowance was short. */
  approvalHash: WriteReturnType['hash'] | undefined;
}

/**
 * What {@link deposit} throws: `ERC20InsufficientBalance`, `HubNotAcceptingDeposits`, `HubConsumersPaused`,
 * `HubZeroAmount` among the reverts.
 *
 * @example
 * try {
 *   await deposit(consumerClient, { hub, amount: parseEther('10') });
 * } catch (e) {
 *   const error = e as DepositErrorType;
 *   if (error instanceof ContractRevertError && error.is('ERC20InsufficientBalance')) {
 *     console.error(error.shortMessage);
 *   }
 * }
 */
export type DepositErrorType = ContractRevertError | ContractCallError;

/**
 * Deposits `amount` from the sending account into its channel at `hub`, or into `consumer`'s channel.
 * When the hub's allowance is short it first approves exactly `amount` and waits for that
 * transaction; where the node can simulate both calls together (`eth_simulateV1`) the deposit is
 * checked before the approval is sent, so a deposit bound to fail costs nothing.
 *
 * @throws {ContractRevertError} `ERC20InsufficientBalance` when the account holds too few tokens;
 * `HubNotAcceptingDeposits` at a closing, closed or punished hub; `HubConsumersPaused`.
 * @example
 * const { hash } = await deposit(walletClient, { hub, amount: parseEther('10') });
 * await waitForTransaction(walletClient, { hash });
 */
export async function deposit(client: ChitClient, parameters: DepositParameters): Promise<DepositReturnType> {
  const account = requireAccount(client, parameters.account);
  const { hub, amount } = parameters;
  const consumer = parameters.consumer ?? account.address;
  const call = isAddressEqual(consumer, account.address)
    ? ({ functionName: 'deposit', args: [amount] } as const)
    : ({ functionName: 'depositFor', args: [consumer, amount] } as const);

  const token =
    parameters.token ?? (await guard(() => readContract(client, { address: hub, abi: hubAbi, functionName: 'token' })));
  const allowance = await guard(() =>
    readContract(client, {
      address: token,
      abi: chitTokenAbi,
      functionName: 'allowance',
      args: [account.address, hub],
    }),
  );

  let approvalHash: DepositReturnType['hash'] | undefined;
  if (allowance < amount) {
    await preflight(client, account.address, token, hub, amount, encodeFunctionData({ abi: hubAbi, ...call }));
    const { request } = await guard(() =>
      simulateContract(client, {
        account,
        address: token,
        abi: chitTokenAbi,
        functionName: 'approve',
        args: [hub, amount],
      }),
    );
    approvalHash = await guard(() => writeContract(client, request));
    await waitForTransaction(client, { hash: approvalHash });
  }

  let hash: DepositReturnType['hash'];
  if (call.functionName === 'deposit') {
    const { request } = await guard(() =>
      simulateContract(client, { account, address: hub, abi: hubAbi, functionName: 'deposit', args: call.args }),
    );
    hash = await guard(() => writeContract(client, request));
  } else {
    const { request } = await guard(() =>
      simulateContract(client, { account, address: hub, abi: hubAbi, functionName: 'depositFor', args: call.args }),
    );
    hash = await guard(() => writeContract(client, request));
  }
  return { hash, approvalHash };
}

/** Simulates approve-then-deposit in one go and throws the deposit's revert; skipped where the node
 * lacks `eth_simulateV1` (the deposit is then simulated after the approval). */
async function preflight(
  client: ChitClient,
  owner: Address,
  token: Address,
  hub: Address,
  amount: bigint,
  depositData: `0x${string}`,
): Promise<void> {
  let results: Awaited<ReturnType<typeof simulateCalls>>['results'];
  try {
    ({ results } = await simulateCalls(client, {
      account: owner,
      calls: [
        { to: token, abi: chitTokenAbi, functionName: 'approve', args: [hub, amount] },
        { to: hub, data: depositData },
      ],
    }));
  } catch {
    return;
  }
  const outcome = results[1];
  if (outcome?.status === 'failure') throw decodeContractError(outcome.data);
}
