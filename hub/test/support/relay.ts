import { testTokenAbi } from '@chit/devstack';
import { signDepositPermit, waitForTransaction } from '@chit/sdk';
import { type Account, type Address, type Chain, parseSignature, type Transport, type WalletClient } from 'viem';

type Payer = WalletClient<Transport, Chain, Account>;

/**
 * What an identity without a gas token needs before the hub's relayer registers it for a fee: `tokens`
 * minted to it, and an allowance of `allowance` to the Registry from an EIP-2612 permit it signs and
 * `payer` (an account with gas) submits. The identity sends nothing itself.
 */
export async function fundIdentity(
  payer: Payer,
  identity: WalletClient<Transport, Chain, Account>,
  parts: { token: Address; registry: Address; tokens: bigint; allowance: bigint },
): Promise<void> {
  const { token, registry, tokens, allowance } = parts;
  if (tokens > 0n) {
    const hash = await payer.writeContract({
      address: token,
      abi: testTokenAbi,
      functionName: 'mint',
      args: [identity.account.address, tokens],
    });
    await waitForTransaction(payer, { hash });
  }
  if (allowance > 0n) {
    // signDepositPermit signs a plain EIP-2612 permit; its `hub` is the spender: here the Registry.
    const permit = await signDepositPermit(identity, { hub: registry, token, amount: allowance });
    const { r, s, v } = parseSignature(permit.signature);
    const hash = await payer.writeContract({
      address: token,
      abi: testTokenAbi,
      functionName: 'permit',
      args: [identity.account.address, registry, allowance, permit.deadline, Number(v), r, s],
    });
    await waitForTransaction(payer, { hash });
  }
}
