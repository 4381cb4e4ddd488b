import type { Pool } from 'pg';

/** Sign-in nonces (auth_nonces, migration 0006): each handed out once and good for one sign-in. */
export class AuthRepository {
  constructor(private readonly pool: Pool) {}

  /** Records `nonce` until `expiresAt`, and forgets the nonces that expired. */
  async issue(nonce: string, expiresAt: Date): Promise<void> {
    await this.pool.query(
      `WITH expired AS (DELETE FROM auth_nonces WHERE expires_at < now())
       INSERT INTO auth_nonces (nonce, expires_at) VALUES ($1, $2)`,
      [nonce, expiresAt],
    );
  }

  /** Spends `nonce`: true once, when it was issued and has not expired; false ever after. */
  async spend(nonce: string): Promise<boolean> {
    const { rowCount } = await this.pool.query('DELETE FROM auth_nonces WHERE nonce = $1 AND expires_at > now()', [
      nonce,
    ]);
    return rowCount === 1;
  }
}
