import { type HubScope, hubPromiseDigestBytes } from '@chit/sdk';
import { type Address, getAddress } from 'viem';
import type { OperatorSigner } from '../crypto/operator-signer';
import type { Hex } from '../db/bytes';
import { HubError } from '../errors/hub-error';
import type { BooksRepository } from '../repositories/books.repository';
import type { RevealRepository } from '../repositories/exchange.repository';
import { available } from './consumer-money';

/** Consumer and provider state for the data API (docs/protocol.md). */
export class BooksService {
  constructor(
    private readonly scope: HubScope,
    private readonly books: BooksRepository,
    private readonly exchanges: RevealRepository,
    private readonly signer: OperatorSigner,
  ) {}

  /** `param`: an address the edge checked and checksummed (EIP-55, as every answer gives it). */
  async consumer(param: Address) {
    const address = param.toLowerCase() as Hex;
    const books = await this.books.consumer(address);
    if (!books) throw new HubError('UNKNOWN_CONSUMER', `${param} has no channel at this hub`, { consumer: param });
    const best = books.bestHashlock ? await this.exchanges.byHashlock(books.bestHashlock) : undefined;
    return {
      address: param,
      balance: books.balance,
      settled: books.settled,
      promised: books.signedTotal,
      credited: books.credited,
      available: available(books),
      pendingExit:
        books.exitAmount > 0n
          ? { amount: books.exitAmount, readyAt: BigInt(Math.floor((books.exitReadyAt?.getTime() ?? 0) / 1000)) }
          : null,
      latestPromise: best
        ? {
            ...this.scope,
            consumer: param,
            total: best.consumerTotal,
            hashlock: best.hashlock,
            agreement: { provider: getAddress(best.provider), id: best.agreementId, total: best.agreementTotal },
            signature: best.consumerSignature,
          }
        : null,
    };
  }

  /** `param`: an address the edge checked and checksummed. */
  async provider(param: Address) {
    const address = param.toLowerCase() as Hex;
    const books = await this.books.provider(address);
    if (!books?.latestHashlock) {
      throw new HubError('UNKNOWN_PROVIDER', `The hub has no promise for ${param}`, { provider: param });
    }
    const promise = { ...this.scope, provider: param as Hex, total: books.promised, hashlock: books.latestHashlock };
    return {
      address: param,
      earned: books.promised,
      settled: books.settled,
      unsettled: books.promised - books.settled,
      latestPromise: { ...promise, signature: this.signer.signDigest(hubPromiseDigestBytes(promise)) },
    };
  }
}
