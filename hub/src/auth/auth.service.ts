import { type Address, getAddress, type Hex, isAddressEqual, verifyMessage } from 'viem';
import { generateSiweNonce, parseSiweMessage, validateSiweMessage } from 'viem/siwe';
import { HubError } from '../errors/hub-error';
import type { AuthRepository } from './auth.repository';
import type { SessionClaims, SessionTokens } from './session-token';

/** How long a nonce waits for its sign-in. */
const NONCE_SECONDS = 600;
/** The longest session a sign-in opens (shorter when the message expires sooner). */
const SESSION_SECONDS = 12 * 3600;
/** How far a message's issuedAt may be from the hub's clock. */
const ISSUED_WINDOW_SECONDS = 300;

/** Who is asking: the session a request's `Authorization: Bearer` token opened. */
export type Session = SessionClaims;

/**
 * Sign-In with Ethereum (EIP-4361, parsed and checked with viem's kept implementation) for the history
 * endpoints: the hub hands out a nonce, the identity signs a message for this hub's domain and chain
 * with it (EIP-191), and the hub answers a bearer token of the session. A nonce serves one sign-in.
 * Signatures are checked off-chain: identities are keys (EOAs), as everywhere in Chit.
 */
export class AuthService {
  constructor(
    private readonly repository: AuthRepository,
    private readonly tokens: SessionTokens,
    private readonly chainId: number,
    private readonly operator: Address,
    /** The domains a message may name (AUTH_DOMAINS); unset, the host the sign-in request was sent to. */
    private readonly domains?: readonly string[],
  ) {}

  async nonce(now = new Date()): Promise<{ nonce: string; expiresAt: string }> {
    const nonce = generateSiweNonce();
    const expiresAt = new Date(now.getTime() + NONCE_SECONDS * 1000);
    await this.repository.issue(nonce, expiresAt);
    return { nonce, expiresAt: expiresAt.toISOString() };
  }

  /**
   * Opens a session for the message's address when `message` is an EIP-4361 message for one of this
   * hub's domains (AUTH_DOMAINS; else `host`, the host the request was sent to) and this hub's chain, issued within five minutes, not expired, signed
   * by its address, with a nonce this hub issued and nobody used. Else UNAUTHORIZED with the reason;
   * the nonce is spent only by a sign-in that passed every other check.
   */
  async signIn(
    request: { message: string; signature: Hex },
    host: string | undefined,
    now = new Date(),
  ): Promise<{ token: string; address: Address; operator: boolean; expiresAt: string }> {
    const refuse = (reason: string, message: string): never => {
      throw new HubError('UNAUTHORIZED', message, { reason });
    };
    const message = parseSiweMessage(request.message);
    if (!message.address || !message.nonce || !message.domain || !message.uri || message.version !== '1') {
      refuse('message', 'message: expected an EIP-4361 message with address, domain, uri, version 1 and nonce');
    }
    // A Host header is the client's to write: behind a public name, AUTH_DOMAINS says which names are
    // this hub's, so that a message signed on another site cannot be replayed here with its Host.
    const domain = message.domain?.toLowerCase();
    const allowed = this.domains ?? (host ? [host.toLowerCase()] : []);
    if (!domain || !allowed.includes(domain)) {
      refuse('domain', `The message is for ${message.domain}; sign one for this hub's host`);
    }
    if (message.chainId !== this.chainId) {
      refuse('chain', `The message is for chain ${message.chainId}; this hub is on chain ${this.chainId}`);
    }
    const issuedAt = message.issuedAt?.getTime();
    if (issuedAt === undefined || Math.abs(issuedAt - now.getTime()) > ISSUED_WINDOW_SECONDS * 1000) {
      refuse('issuedAt', "Sign a fresh message: issuedAt must be within 5 minutes of the hub's clock");
    }
    if (!validateSiweMessage({ message, time: now })) {
      refuse('expired', 'The message has expired or is not valid yet');
    }
    const address = getAddress(message.address as Address);
    const signed = await verifyMessage({ address, message: request.message, signature: request.signature }).catch(
      () => false,
    );
    if (!signed) refuse('signature', `The message is not signed by ${address}`);
    if (!(await this.repository.spend(message.nonce as string))) {
      refuse('nonce', 'The nonce was not issued by this hub, was used already, or expired: get a new one');
    }
    const longest = now.getTime() + SESSION_SECONDS * 1000;
    const expiresAt = new Date(Math.min(longest, message.expirationTime?.getTime() ?? longest));
    const claims = { address, operator: isAddressEqual(address, this.operator), expiresAt };
    return { token: this.tokens.issue(claims), ...claims, expiresAt: expiresAt.toISOString() };
  }

  /** The session of an `Authorization` header, or UNAUTHORIZED saying what is missing. */
  session(authorization: string | undefined, now = new Date()): Session {
    const token = /^Bearer (\S+)$/i.exec(authorization ?? '')?.[1];
    if (!token) {
      throw new HubError('UNAUTHORIZED', 'Sign in and send Authorization: Bearer <token>', { reason: 'missing' });
    }
    const claims = this.tokens.read(token, now);
    if ('refused' in claims) {
      throw new HubError('UNAUTHORIZED', `The session token is ${claims.refused}: sign in again`, {
        reason: claims.refused,
      });
    }
    return claims;
  }

  /** The session, when it is `identity`'s; else FORBIDDEN (UNAUTHORIZED without a valid one). */
  requireIdentity(authorization: string | undefined, identity: Address): Session {
    const session = this.session(authorization);
    if (!isAddressEqual(session.address, identity)) {
      throw new HubError('FORBIDDEN', `This session is ${session.address}'s; it reads only its own history`, {
        session: session.address,
      });
    }
    return session;
  }

  /** The session, when it is the operator's; else FORBIDDEN (UNAUTHORIZED without a valid one). */
  requireOperator(authorization: string | undefined): Session {
    const session = this.session(authorization);
    if (!session.operator) {
      throw new HubError('FORBIDDEN', "The hub's figures are the operator's: sign in with the operator key", {
        session: session.address,
      });
    }
    return session;
  }
}
