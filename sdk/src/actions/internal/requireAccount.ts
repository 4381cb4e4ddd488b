import type { Account, Address } from 'viem';
import { parseAccount } from 'viem/accounts';
import { ChitError } from '../../errors/base.js';
import type { ChitClient } from '../types.js';

/** The account that acts: `account` if given, else the client's. */
export function requireAccount(client: ChitClient, account: Account | Address | undefined): Account {
  const resolved = account ?? client.account;
  if (!resolved) {
    throw new ChitError('ACCOUNT_REQUIRED', 'No account to sign or send with', {
      details: 'Pass `account`, or use a client created with an account.',
    });
  }
  return parseAccount(resolved);
}
