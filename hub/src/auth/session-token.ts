import { createHmac, timingSafeEqual } from 'node:crypto';
import { type Address, getAddress, type Hex, hexToBytes } from 'viem';

/** Whose a session is, whether it is the operator's, and until when it holds. */
export interface SessionClaims {
  address: Address;
  operator: boolean;
  expiresAt: Date;
}

const PREFIX = 'chit1';

/**
 * Bearer tokens of signed-in sessions: `chit1.<claims>.<HMAC-SHA256 of them>`, base64url. Stateless, so
 * every replica of the hub reads a token another issued: the key is derived from the operator key they
 * all hold (a token proves only that this hub issued it; rotating the operator key ends every session).
 */
export class SessionTokens {
  private readonly key: Buffer;

  constructor(operatorPrivateKey: Hex) {
    this.key = createHmac('sha256', hexToBytes(operatorPrivateKey)).update('chit/session-token/v1').digest();
  }

  issue(claims: SessionClaims): string {
    const body = Buffer.from(
      JSON.stringify({ a: claims.address, o: claims.operator, e: Math.floor(claims.expiresAt.getTime() / 1000) }),
    ).toString('base64url');
    return `${PREFIX}.${body}.${this.mac(body)}`;
  }

  /** The claims of `token`, or why it holds none: malformed, forged, or expired at `now`. */
  read(token: string, now = new Date()): SessionClaims | { refused: 'malformed' | 'forged' | 'expired' } {
    const [prefix, body, mac, ...rest] = token.split('.');
    if (prefix !== PREFIX || !body || !mac || rest.length > 0) return { refused: 'malformed' };
    const expected = Buffer.from(this.mac(body));
    const given = Buffer.from(mac);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) return { refused: 'forged' };
    const claims = JSON.parse(Buffer.from(body, 'base64url').toString()) as { a: string; o: boolean; e: number };
    if (claims.e * 1000 <= now.getTime()) return { refused: 'expired' };
    return { address: getAddress(claims.a), operator: claims.o === true, expiresAt: new Date(claims.e * 1000) };
  }

  private mac(body: string): string {
    return createHmac('sha256', this.key).update(body).digest('base64url');
  }
}
