import { Logger } from '@nestjs/common';
import {
  type Chain,
  createWalletClient,
  type Hex,
  http,
  keccak256,
  type LocalAccount,
  type PublicClient,
  parseTransaction,
  type TransactionReceipt,
  type TransactionSerializable,
  type NonceManager as ViemNonceManager,
  type WalletClient,
  webSocket,
} from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import {
  estimateFeesPerGas,
  getBlockNumber,
  getTransaction,
  getTransactionCount,
  getTransactionReceipt,
  sendRawTransaction,
} from 'viem/actions';
import { messageOf } from '../../errors/message-of';
import { ShuttingDown, sleep, TransactionLostError } from '../../settlement/settlement.errors';
import type { NonceManager } from './nonce-manager';
import type { OutboxRepository } from './outbox.repository';
import { bumpFees, feesOf, refusedByNode } from './outbox.rules';
import type { SendRequest, TransactionRecord } from './outbox.types';

export interface TransactionSenderOptions {
  /**
   * Blocks on top of the including one before a transaction counts as confirmed (0: once mined): the
   * depth at which the chain follower applies a block (CONFIRMATIONS).
   */
  confirmations: number;
  /** A transaction not mined this long after its latest attempt is replaced with higher fees. */
  resubmitAfterMs: number;
  bumpPercent: number;
  maxFeePerGas?: bigint | undefined;
  pollMs: number;
}

/** Polls of a nonce taken by a transaction none of ours before it counts as lost. */
const LOST_AFTER_POLLS = 10;

/**
 * Sends, tracks and re-sends the transactions of one key. An SDK action sends through
 * {@link TransactionSender.send}, which gives it an account whose nonce comes from the
 * {@link NonceManager} and whose signature is recorded before broadcast; {@link TransactionSender.confirm}
 * then follows the nonce until one of its attempts has enough confirmations, rebroadcasting an attempt
 * the node lost and replacing one not mined in time (same nonce, higher fees).
 */
export class TransactionSender {
  readonly wallet: WalletClient;
  readonly address: Hex;
  private readonly account: LocalAccount;
  private readonly tracking = new Map<string, Promise<TransactionReceipt>>();
  private readonly logger = new Logger('TransactionSender');

  constructor(
    privateKey: Hex,
    chain: Chain,
    rpcUrl: string,
    private readonly client: PublicClient,
    private readonly nonces: NonceManager,
    private readonly repository: OutboxRepository,
    private readonly options: TransactionSenderOptions,
    private readonly signal: AbortSignal,
  ) {
    this.account = privateKeyToAccount(privateKey);
    this.address = this.account.address.toLowerCase() as Hex;
    const transport = rpcUrl.startsWith('ws') ? webSocket(rpcUrl) : http(rpcUrl, { retryCount: 0, timeout: 15_000 });
    this.wallet = createWalletClient({ chain, transport });
  }

  /**
   * Runs `action` (an SDK write action) with an account that takes the key's next nonce and records
   * the signed transaction, with the settlements it carries marked submitted, before it is broadcast.
   * Returns the action's result, or just the hash when the broadcast failed in a way that leaves the
   * node's copy unknown (the transaction is recorded: {@link confirm} rebroadcasts it).
   *
   * @throws what `action` throws before signing (a simulated revert: nothing was sent), or a refusal
   * by the node (the recorded transaction is marked dropped and its nonce given back).
   */
  send<T extends { hash: Hex }>(
    request: SendRequest,
    action: (account: LocalAccount) => Promise<T>,
  ): Promise<{ hash: Hex; result: T | undefined }> {
    return this.nonces.withNextNonce(async (slot) => {
      let recorded: Hex | undefined;
      const base = this.account;
      const nonceManager: ViemNonceManager = {
        consume: async () => Number(slot.nonce),
        get: async () => Number(slot.nonce),
        increment: () => {},
        reset: () => {},
      };
      const account: LocalAccount = {
        ...base,
        nonceManager,
        signTransaction: async (transaction, options) => {
          const raw = await base.signTransaction(transaction, options);
          const hash = keccak256(raw);
          await slot.record(
            {
              hash,
              sender: this.address,
              nonce: slot.nonce,
              kind: request.kind,
              claims: request.claims,
              raw,
              ...feesOf(transaction),
            },
            request.settlementIds,
          );
          recorded = hash;
          return raw;
        },
      };
      try {
        const result = await action(account);
        return { hash: result.hash, result };
      } catch (error) {
        if (!recorded) throw error;
        if (refusedByNode(error)) {
          await this.repository.markDropped([recorded]);
          throw error;
        }
        this.logger.warn(`broadcast of ${recorded} failed, it is recorded and will be sent again: ${messageOf(error)}`);
        return { hash: recorded, result: undefined };
      }
    });
  }

  /**
   * Waits until a transaction with the nonce of `hash` (it, or a replacement) has the configured
   * confirmations, and returns its receipt (which may show a revert). Callers waiting for the same
   * nonce share one tracker.
   *
   * @throws {TransactionLostError} when the nonce went to a transaction that is none of ours, or every
   * attempt was refused; {@link ShuttingDown} when the sender is closing.
   */
  async confirm(hash: Hex): Promise<TransactionReceipt> {
    const tx = await this.repository.transaction(hash);
    if (!tx) throw new TransactionLostError(`transaction ${hash} is not recorded`, 'DROPPED');
    const key = `${tx.sender}:${tx.nonce}`;
    let tracking = this.tracking.get(key);
    if (!tracking) {
      tracking = this.track(tx.sender, tx.nonce).finally(() => this.tracking.delete(key));
      this.tracking.set(key, tracking);
    }
    return tracking;
  }

  private async track(sender: Hex, nonce: bigint): Promise<TransactionReceipt> {
    const confirmations = BigInt(this.options.confirmations);
    let lostPolls = 0;
    for (;;) {
      if (this.signal.aborted) throw new ShuttingDown('closing');
      const attempts = await this.repository.transactionsWithNonce(sender, nonce);
      let mined: TransactionReceipt | undefined;
      for (const attempt of [...attempts].reverse()) {
        mined = await getTransactionReceipt(this.client, { hash: attempt.hash }).catch(() => undefined);
        if (mined) break;
      }
      if (mined) {
        lostPolls = 0;
        const head = await getBlockNumber(this.client, { cacheTime: 0 });
        if (head - mined.blockNumber >= confirmations) {
          await this.repository.markMined(mined.transactionHash.toLowerCase() as Hex, mined.blockNumber, mined.gasUsed);
          return mined;
        }
      } else {
        const next = BigInt(await getTransactionCount(this.client, { address: sender, blockTag: 'latest' }));
        const live = attempts.filter((attempt) => attempt.status === 'pending');
        if (next > nonce || live.length === 0) {
          // Receipts can trail the nonce on some nodes: give them a few polls before giving up.
          if (++lostPolls >= LOST_AFTER_POLLS) {
            await this.repository.markDropped(live.map((attempt) => attempt.hash));
            throw new TransactionLostError(
              live.length === 0
                ? `every transaction with nonce ${nonce} was refused`
                : `nonce ${nonce} of ${sender} was used by a transaction the hub did not send`,
              live.length === 0 ? 'DROPPED' : 'REPLACED',
            );
          }
        } else {
          lostPolls = 0;
          const latest = live[live.length - 1]!;
          if (latest.ageMs >= this.options.resubmitAfterMs) await this.replace(latest, live);
          else await this.rebroadcastIfLost(latest);
        }
      }
      await sleep(this.options.pollMs, this.signal);
    }
  }

  /** Sends `latest` again with higher fees and the same nonce (recorded first, like any transaction). */
  private async replace(latest: TransactionRecord, live: TransactionRecord[]): Promise<void> {
    const parsed = parseTransaction(latest.raw);
    const network = await estimateFeesPerGas(this.client, { chain: this.wallet.chain }).catch(() => ({
      maxFeePerGas: 0n,
      maxPriorityFeePerGas: 0n,
    }));
    const fees = bumpFees({
      previous: { maxFeePerGas: latest.maxFeePerGas, maxPriorityFeePerGas: latest.maxPriorityFeePerGas },
      network: { maxFeePerGas: network.maxFeePerGas ?? 0n, maxPriorityFeePerGas: network.maxPriorityFeePerGas ?? 0n },
      bumpPercent: this.options.bumpPercent,
      cap: this.options.maxFeePerGas,
    });
    if (!fees) {
      this.logger.warn(`${latest.hash} (nonce ${latest.nonce}) is not mined, and TX_MAX_FEE_PER_GAS allows no bump`);
      await this.rebroadcastIfLost(latest);
      return;
    }
    const {
      r: _r,
      s: _s,
      v: _v,
      yParity: _y,
      ...unsigned
    } = parsed as TransactionSerializable & {
      r?: Hex;
      s?: Hex;
      v?: bigint;
      yParity?: number;
    };
    const replacement: TransactionSerializable =
      unsigned.type === 'legacy' || unsigned.type === 'eip2930'
        ? ({ ...unsigned, gasPrice: fees.maxFeePerGas } as TransactionSerializable)
        : ({ ...unsigned, ...fees } as TransactionSerializable);
    const raw = await this.account.signTransaction!(replacement);
    const hash = keccak256(raw);
    await this.repository.recordReplacement(
      {
        hash,
        sender: latest.sender,
        nonce: latest.nonce,
        kind: latest.kind,
        claims: latest.claims,
        raw,
        ...fees,
      },
      live.map((attempt) => attempt.hash),
    );
    this.logger.log(
      `replacing ${latest.hash} (nonce ${latest.nonce}, not mined after ${latest.ageMs} ms) with ${hash} at ${fees.maxFeePerGas} wei/gas`,
    );
    try {
      await sendRawTransaction(this.client, { serializedTransaction: raw });
    } catch (error) {
      if (refusedByNode(error)) {
        this.logger.warn(`replacement ${hash} refused: ${messageOf(error)}`);
        await this.repository.markDropped([hash]);
      }
    }
  }

  /** Broadcasts `attempt` again when the node does not know it (a restart on either side). */
  private async rebroadcastIfLost(attempt: TransactionRecord): Promise<void> {
    const known = await getTransaction(this.client, { hash: attempt.hash }).then(
      () => true,
      () => false,
    );
    if (known) return;
    try {
      await sendRawTransaction(this.client, { serializedTransaction: attempt.raw });
      this.logger.log(`rebroadcast ${attempt.hash} (nonce ${attempt.nonce})`);
    } catch (error) {
      if (refusedByNode(error) && !/already known|nonce too low/i.test(messageOf(error))) {
        this.logger.warn(`rebroadcast of ${attempt.hash} refused: ${messageOf(error)}`);
        await this.repository.markDropped([attempt.hash]);
      }
    }
  }
}
