import {
  ContractRevertError,
  chitTokenAbi,
  type HubScope,
  registerIdentityRelayed,
  setBeneficiaryRelayed,
} from '@chit/sdk';
import { type Address, BaseError, ContractFunctionRevertedError, erc20Abi, getAddress, parseSignature } from 'viem';
import { readContract, simulateContract, writeContract } from 'viem/actions';
import type { ChainService } from '../../chain/chain.service';
import type { TransactionSender } from '../../chain/outbox/transaction-sender';
import type { Hex } from '../../db/bytes';
import { messageOf } from '../../errors/message-of';
import { PermanentFault } from '../settlement.errors';
import { classifyRevert } from '../settlement.policy';
import type { IdentityPayload, SettlementOf } from '../settlement.types';

/** Sends relayed Registry actions: registrations (with the identity's permit of the fee first) and beneficiary changes. */
export class RelaySender {
  constructor(
    private readonly scope: HubScope,
    private readonly chain: ChainService,
    private readonly sender: TransactionSender,
  ) {}

  /**
   * Sends one Registry action (its own transaction; a registration's permit first, in one of its own)
   * and returns its hash, for the executor to follow.
   */
  async send(row: SettlementOf<'identity' | 'beneficiary'>): Promise<Hex> {
    const identity = getAddress(row.subject);
    if (row.kind === 'identity' && row.payload.permit)
      await this.submitPermit(identity, row.payload, row.payload.permit);
    const request = { kind: row.kind, claims: 1, settlementIds: [row.id] };
    let hash: Hex;
    try {
      ({ hash } = await this.sender.send(request, (account) => {
        const { registry, beneficiary, nonce, signature } = row.payload;
        const { chainId } = this.scope;
        return row.kind === 'identity'
          ? registerIdentityRelayed(this.sender.wallet, {
              account,
              registration: {
                registry,
                chainId,
                identity,
                beneficiary,
                relayerFee: BigInt(row.payload.relayerFee ?? '0'),
                // The identity signed for this hub's relayer, the account that sends it.
                relayer: account.address,
                nonce: BigInt(nonce),
                signature,
              },
            })
          : setBeneficiaryRelayed(this.sender.wallet, {
              account,
              change: { registry, chainId, identity, beneficiary, nonce: BigInt(nonce), signature },
            });
      }));
    } catch (error) {
      if (error instanceof ContractRevertError && classifyRevert(error.errorName) !== 'transient') {
        throw new PermanentFault(error.shortMessage, error.errorName);
      }
      throw error;
    }
    return hash;
  }

  /**
   * Submits the identity's permit of the relayer fee to the Registry and waits for it, unless the
   * allowance holds the fee already (an earlier attempt's permit was mined): the registration's
   * `transferFrom` needs it. The transaction carries no settlement (the registration's comes next). A
   * permit the token refuses fails the registration for good.
   */
  private async submitPermit(identity: Address, p: IdentityPayload, permit: { deadline: string; signature: Hex }) {
    const relayerFee = BigInt(p.relayerFee ?? '0');
    const { token } = await this.chain.hubInfo();
    const allowance = () =>
      readContract(this.chain.client, {
        address: token,
        abi: erc20Abi,
        functionName: 'allowance',
        args: [identity, p.registry],
      });
    if (relayerFee === 0n || (await allowance()) >= relayerFee) return;
    const { r, s, v, yParity } = parseSignature(permit.signature);
    const call = {
      address: token,
      abi: chitTokenAbi,
      functionName: 'permit',
      args: [
        identity,
        p.registry,
        relayerFee,
        BigInt(permit.deadline),
        v === undefined ? 27 + yParity : Number(v),
        r,
        s,
      ],
    } as const;
    let hash: Hex;
    try {
      ({ hash } = await this.sender.send({ kind: 'identity', claims: 0, settlementIds: [] }, async (account) => {
        const { request } = await simulateContract(this.chain.client, { ...call, account });
        return { hash: await writeContract(this.sender.wallet, { ...request, chain: this.sender.wallet.chain }) };
      }));
    } catch (error) {
      const reverted = error instanceof BaseError && error.walk((e) => e instanceof ContractFunctionRevertedError);
      if (!reverted) throw error;
      if ((await allowance()) >= relayerFee) return;
      throw new PermanentFault(
        `the token refuses the identity's permit of the relayer fee: ${messageOf(error)}`,
        'PERMIT_REFUSED',
      );
    }
    const receipt = await this.sender.confirm(hash);
    if ((await allowance()) < relayerFee) {
      throw new PermanentFault(
        `the identity's permit of the relayer fee left the Registry's allowance short (transaction ${receipt.transactionHash}, ${receipt.status})`,
        'PERMIT_REFUSED',
      );
    }
  }
}
