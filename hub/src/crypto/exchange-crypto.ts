import {
  consumerPromiseDigestBytes,
  type HubPromise,
  hubPromiseDigestBytes,
  type SignedConsumerPromise,
} from '@chit/sdk';
import { enableNativeHashing, nativePreimageOpener, nativeVerifier } from '@chit/sdk/node';
import type { Hex } from '../db/bytes';
import { keccakHex } from '../exchange/exchange.rules';
import { OperatorSigner } from './operator-signer';

/** One exchange's consumer promise and the box that should hold its R. */
export interface CryptoCheckItem {
  promise: SignedConsumerPromise;
  box: Hex;
}

/**
 * What the crypto says of one item, for the exchange to rule on: the lower-case address that signed
 * the promise (null for a malformed or malleable signature), and the R the box opened to when it
 * opened with the operator key to the R of the promise's hashlock (`opened` says whether it opened
 * at all, for the error's words).
 */
export interface CryptoVerdict {
  signer: Hex | null;
  preimage: Hex | null;
  opened: boolean;
}

/**
 * The exchange's CPU-heavy work, in whichever thread runs it: signature recovery, opening boxes and
 * signing hub promises, with native libsecp256k1 and keccak. {@link ExchangeCryptoPool} runs it on
 * worker threads; the exchange service also runs it inline when no thread is configured.
 */
export class ExchangeCryptoWork {
  private readonly verifier = nativeVerifier();
  private readonly open: (box: Hex) => Hex | undefined;
  private readonly signer: OperatorSigner;

  constructor(operatorKey: Hex) {
    enableNativeHashing();
    this.signer = new OperatorSigner(operatorKey);
    this.open = nativePreimageOpener(operatorKey);
  }

  check(items: CryptoCheckItem[]): CryptoVerdict[] {
    return items.map(({ promise, box }) => {
      const signer = this.verifier.recover(consumerPromiseDigestBytes(promise), promise.signature) ?? null;
      const opened = this.open(box);
      const preimage = opened && keccakHex(opened) === promise.hashlock.toLowerCase() ? opened : null;
      return { signer: signer as Hex | null, preimage, opened: opened !== undefined };
    });
  }

  sign(promises: HubPromise[]): Hex[] {
    return promises.map((promise) => this.signer.signDigest(hubPromiseDigestBytes(promise)));
  }
}
