import {
  decodeMessage,
  type HubScope,
  MalformedMessageError,
  type SignedConsumerPromise,
  type SignedHubPromise,
} from '@chit/sdk';
import { nativePreimageOpener } from '@chit/sdk/node';
import type { ChainService } from '../chain/chain.service';
import type { OperatorSigner } from '../crypto/operator-signer';
import type { Hex } from '../db/bytes';
import { HubError } from '../errors/hub-error';
import { decideExchanges, type ExchangeCandidate } from '../exchange/exchange.rules';
import type { ExchangeService } from '../exchange/exchange.service';
import type { FacilitatorRequest, SettleAnswer, SupportedAnswer, VerifyAnswer } from './x402.dto';
import type { X402Repository } from './x402.repository';

/** The scheme this facilitator serves (docs/protocol.md, "x402 facilitator"). */
const SCHEME = 'chit';
const X402_VERSION = 2;

/** Why a payment does not fit what the seller asked for, beyond the exchange's own codes. */
type X402Code =
  | 'UNSUPPORTED_SCHEME'
  | 'WRONG_NETWORK'
  | 'WRONG_ASSET'
  | 'WRONG_PAYEE'
  | 'HASHLOCK_MISMATCH'
  | 'UNDERPAID';

/** A payment refused for an x402 reason (the exchange's own refusals are its HubErrors). Answered in a 200. */
class PaymentRefused extends Error {
  constructor(
    readonly code: X402Code,
    message: string,
  ) {
    super(message);
  }
}

/** A payment that passed the checks that need no books: its promise, and its box and R when sent. */
interface CheckedPayment {
  promise: SignedConsumerPromise;
  box?: { sealed: Hex; preimage: Hex };
}

/**
 * The hub as the x402 facilitator of the `chit` scheme: `verify` runs every check of an exchange
 * against the current books without writing anything, `settle` runs the same checks, then the exchange
 * itself ({@link ExchangeService.exchange}: same idempotence, group commit and metrics). Both first
 * check that the payment is one the seller asked for (scheme, network, asset, payee, invoice
 * hashlock), and then that it credits at least the price. A refused payment is answered 200 with the
 * refusal's code: an x402 one, or the hub's error code.
 */
export class X402Service {
  private readonly network: string;
  /** Opens an earlier exchange's box for the rules (an unrevealed R), as the exchange does. */
  private readonly openBox: (box: Hex) => Hex | undefined;

  constructor(
    private readonly scope: HubScope,
    private readonly exchanges: ExchangeService,
    private readonly repository: X402Repository,
    private readonly chain: ChainService,
    private readonly signer: OperatorSigner,
    /** Hears the code of every settle refused (answered in a 200, so the error filter never sees it). */
    private readonly counted?: (code: string) => void,
  ) {
    this.network = `eip155:${scope.chainId}`;
    this.openBox = nativePreimageOpener(signer.privateKey);
  }

  /** `GET /x402/supported`: the one kind this hub settles, its terms, and the operator as signer. */
  async supported(): Promise<SupportedAnswer> {
    const { token, fee } = await this.chain.hubInfo();
    const operator = this.signer.address;
    return {
      kinds: [
        {
          x402Version: X402_VERSION,
          scheme: SCHEME,
          network: this.network,
          extra: { hub: this.scope.hub, token, operator, fee, publicKey: this.signer.publicKey },
        },
      ],
      extensions: [],
      signers: { 'eip155:*': [operator] },
    };
  }

  /**
   * `POST /x402/verify`: whether settling the payment now would succeed and credit at least the price.
   * Runs the exchange's checks and rules on the books as they are, and writes nothing.
   */
  async verify(request: FacilitatorRequest): Promise<VerifyAnswer> {
    let payer: string | undefined;
    try {
      const { promise, box } = await this.check(request, (consumer) => {
        payer = consumer;
      });
      const { increment, repeated } = await this.preview(promise, box);
      if (repeated) {
        throw new HubError(
          'PROMISE_TOO_LOW',
          'This promise was exchanged already: settling it again answers the same hub promise and credits nothing',
          { hashlock: promise.hashlock },
        );
      }
      requirePrice(increment, request);
      return { isValid: true, payer: promise.consumer, extra: { increment: increment.toString() } };
    } catch (error) {
      const { code, message } = refusalOf(error);
      return { isValid: false, invalidReason: code, invalidMessage: message, ...(payer && { payer }) };
    }
  }

  /**
   * `POST /x402/settle`: the checks of {@link verify}, then the exchange of the payment's promise with
   * its sealed R (`paymentPayload.payload.encryptedPreimage`). A repeat answers the same hub promise and
   * amount, and credits nothing more.
   */
  async settle(request: FacilitatorRequest): Promise<SettleAnswer<SignedHubPromise>> {
    let payer: string | undefined;
    try {
      const { promise, box } = await this.check(request, (consumer) => {
        payer = consumer;
      });
      if (!box) {
        throw new HubError(
          'MALFORMED',
          'paymentPayload.payload.encryptedPreimage: settling needs R sealed to the hub key (sealPreimage)',
          { path: 'paymentPayload.payload.encryptedPreimage' },
        );
      }
      // A payment the rules refuse on the books as they are is answered without a write; one they
      // accept is exchanged, and the exchange decides again on the rows it locks.
      requirePrice((await this.preview(promise, box)).increment, request);
      const { hubPromise } = await this.exchanges.exchange({
        promise,
        encryptedPreimage: box.sealed,
      });
      const record = await this.repository.exchange(promise.hashlock.toLowerCase() as Hex);
      return {
        success: true,
        transaction: '',
        network: this.network,
        payer: promise.consumer,
        amount: (record?.increment ?? 0n).toString(),
        extra: { hubPromise },
      };
    } catch (error) {
      const { code, message } = refusalOf(error);
      this.counted?.(code);
      return {
        success: false,
        errorReason: code,
        errorMessage: message,
        transaction: '',
        network: this.network,
        ...(payer && { payer }),
      };
    }
  }

  /**
   * The checks of a payment that need no books: that it is for this scheme, x402 version, network and
   * token, holds a wire consumer promise (its consumer goes to `payer`) to `payTo` for the invoice's
   * hashlock, then the exchange's stateless checks, and the box's when sent. Throws the refusal.
   */
  private async check(request: FacilitatorRequest, payer: (consumer: string) => void): Promise<CheckedPayment> {
    const { paymentPayload, paymentRequirements: required } = request;
    const { accepted, payload } = paymentPayload;
    if (request.x402Version !== X402_VERSION || paymentPayload.x402Version !== X402_VERSION) {
      throw new PaymentRefused('UNSUPPORTED_SCHEME', `This hub settles the ${SCHEME} scheme of x402 version 2 only`);
    }
    if (required.scheme !== SCHEME || accepted.scheme !== SCHEME) {
      throw new PaymentRefused('UNSUPPORTED_SCHEME', `This hub settles the ${SCHEME} scheme only`);
    }
    if (required.network !== this.network || accepted.network !== this.network) {
      throw new PaymentRefused('WRONG_NETWORK', `This hub is on ${this.network}`);
    }
    // The token is immutable: the hub's state as read at start names it.
    const token = this.chain.lastHubInfo?.token ?? (await this.chain.hubInfo()).token;
    if (required.asset.toLowerCase() !== token.toLowerCase()) {
      throw new PaymentRefused('WRONG_ASSET', `This hub pays in its token ${token}`);
    }
    const promise = decodePayload('consumerPromise', payload.promise, 'promise');
    payer(promise.consumer);
    if (required.payTo.toLowerCase() !== promise.agreement.provider.toLowerCase()) {
      throw new PaymentRefused('WRONG_PAYEE', `The promise pays ${promise.agreement.provider}, not payTo`);
    }
    const hashlock = accepted.extra.hashlock;
    if (typeof hashlock !== 'string' || hashlock.toLowerCase() !== promise.hashlock) {
      throw new PaymentRefused(
        'HASHLOCK_MISMATCH',
        "The promise's hashlock is not the invoice's (paymentPayload.accepted.extra.hashlock)",
      );
    }
    this.exchanges.checkPromise(promise);
    if (payload.encryptedPreimage === undefined) return { promise };
    const { encryptedPreimage: sealed } = decodePayload(
      'exchangeRequest',
      { promise: payload.promise, encryptedPreimage: payload.encryptedPreimage },
      '',
    );
    return { promise, box: { sealed, preimage: this.exchanges.checkBox(promise, sealed) } };
  }

  /**
   * What the exchange's rules decide for `promise` on the books as they are now, read without a lock,
   * and the increment it credits (for a repeat: the one it credited). Throws the rules' HubError.
   */
  private async preview(
    promise: SignedConsumerPromise,
    box: CheckedPayment['box'],
  ): Promise<{ increment: bigint; repeated: boolean }> {
    const candidate = toCandidate(promise, box);
    const state = await this.repository.state(candidate);
    const earlier = state.exchanges.get(candidate.hashlock);
    const { outcomes, writes } = decideExchanges([candidate], state, this.openBox);
    const outcome = outcomes[0]!;
    if (!outcome.ok) throw outcome.error;
    if (outcome.repeated) return { increment: earlier!.increment, repeated: true };
    return { increment: writes.exchanges[0]!.increment, repeated: false };
  }
}

/** UNDERPAID unless `increment` covers the price, `paymentRequirements.amount`. */
function requirePrice(increment: bigint, request: FacilitatorRequest): void {
  const price = BigInt(request.paymentRequirements.amount);
  if (increment < price) {
    throw new PaymentRefused(
      'UNDERPAID',
      `The promise credits ${increment} to its agreement, less than the price ${price}: sign for the agreement's due total`,
    );
  }
}

/** The code and message a refusal is answered with; errors of the hub itself (database down) propagate. */
function refusalOf(error: unknown): { code: string; message: string } {
  if (error instanceof PaymentRefused || error instanceof HubError) return { code: error.code, message: error.message };
  throw error;
}

/** Decodes a wire message of `paymentPayload.payload`; MALFORMED names the field under `prefix`. */
function decodePayload<N extends 'consumerPromise' | 'exchangeRequest'>(name: N, input: unknown, prefix: string) {
  try {
    return decodeMessage(name, input);
  } catch (error) {
    if (!(error instanceof MalformedMessageError)) throw error;
    const path = ['paymentPayload.payload', prefix, error.path].filter(Boolean).join('.');
    throw new HubError('MALFORMED', `paymentPayload.payload: ${error.shortMessage}`, { path });
  }
}

/**
 * The exchange candidate of `promise`. Without a box (verify), R is unknown: it is only recorded with
 * a credit, which a preview never writes.
 */
function toCandidate(promise: SignedConsumerPromise, box: CheckedPayment['box']): ExchangeCandidate {
  const lower = (hex: string) => hex.toLowerCase() as Hex;
  return {
    hashlock: lower(promise.hashlock),
    provider: lower(promise.agreement.provider),
    consumer: lower(promise.consumer),
    agreementId: lower(promise.agreement.id),
    agreementTotal: promise.agreement.total,
    consumerTotal: promise.total,
    consumerSignature: lower(promise.signature),
    encryptedPreimage: box?.sealed ?? '0x',
    preimage: box?.preimage ?? '0x',
  };
}
