import {
  creditedCheckpointDocument,
  creditedCheckpointKey,
  hashlockOf,
  hubPromiseDigestBytes,
  type Json,
  jsVerifier,
  providerLedgerDocument,
  type SignedHubPromise,
} from '@chit/sdk';
import type { FileStore } from '@chit/sdk/node';
import { type Address, getAddress, type Hex, isAddress } from 'viem';
import { z } from 'zod';
import { CliError } from './errors.js';

// The provider's store as `chit` reads it: the documents a ProviderLedger keeps in a FileStore under its
// default key, `chit/provider/<chainId>/<hub>/<provider>`, one a hub. Each holds the latest hub promise
// and its R: what settling needs when the hub is gone.

/** The key of a ProviderLedger's document: `chit/provider/<chainId>/<hub>/<provider>`, lower case. */
const LEDGER_KEY = /^chit\/provider\/(0|[1-9][0-9]*)\/(0x[0-9a-f]{40})\/(0x[0-9a-f]{40})$/;

/** What a backup file says it is. */
export const BACKUP_FORMAT = 'chit-provider-store-backup';

const address = z.string().refine((value) => isAddress(value), 'expected an address');

// The ProviderLedger's document, read as strictly as the ledger reads it, with its addresses checked: a
// document imported into the store must be one the ledger opens.
const ledgerDocument = providerLedgerDocument.extend({
  hub: address,
  chainId: z.number().int().positive(),
  provider: address,
});

const backupSchema = z.strictObject({
  format: z.literal(BACKUP_FORMAT),
  version: z.literal(1),
  exportedAt: z.string(),
  ledgers: z.array(
    z.strictObject({
      key: z.string().regex(LEDGER_KEY, 'expected chit/provider/<chainId>/<hub>/<provider>'),
      document: z.json(),
    }),
  ),
});

/** A ProviderLedger's document, checked: the latest hub promise to `provider` at `hub` and its R. */
export interface StoredLedger {
  key: string;
  hub: Address;
  chainId: number;
  provider: Address;
  /** The latest hub promise, or null before the first exchange. */
  promise: SignedHubPromise | null;
  /** Its R, or null when the ledger does not hold it. */
  preimage: Hex | null;
  /** The document as stored, written back unchanged by an import. */
  document: Json;
}

/** A backup file read and checked, ready to merge into a store. */
export interface ProviderStoreBackup {
  exportedAt: string;
  ledgers: StoredLedger[];
}

/** What importing one ledger of a backup did. */
export interface ImportOutcome {
  ledger: StoredLedger;
  /** `added`: the store had none; `updated`: the backup's total was higher; `kept`: the store's was as high or higher. */
  outcome: 'added' | 'updated' | 'kept';
  /** The store's total before the import, when it held a promise. */
  storeTotal: bigint | null;
}

/**
 * Checks a ledger document: the schema, a key that names its chain, hub and provider, a hub promise for
 * them, and an R that opens its hashlock. Returns the problem in words, or the ledger.
 */
function checkLedger(key: string, json: unknown): StoredLedger | { path: string; problem: string } {
  const match = LEDGER_KEY.exec(key);
  if (!match) return { path: 'key', problem: 'expected chit/provider/<chainId>/<hub>/<provider>' };
  const result = ledgerDocument.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    return { path: issue.path.join('.'), problem: issue.message };
  }
  const document = result.data;
  const [, chainId, hub, provider] = match;
  if (
    String(document.chainId) !== chainId ||
    document.hub.toLowerCase() !== hub ||
    document.provider.toLowerCase() !== provider
  ) {
    return { path: 'key', problem: `it names another chain, hub or provider than the document (${key})` };
  }
  const promise = document.latest;
  if (
    promise &&
    (promise.chainId !== document.chainId ||
      promise.hub.toLowerCase() !== hub ||
      promise.provider.toLowerCase() !== provider)
  ) {
    return { path: 'latest', problem: 'the hub promise is for another chain, hub or provider than the document' };
  }
  if (promise && document.latestPreimage && hashlockOf(document.latestPreimage) !== promise.hashlock.toLowerCase()) {
    return { path: 'latestPreimage', problem: 'it does not open the hashlock of the hub promise' };
  }
  return {
    key,
    hub: getAddress(document.hub),
    chainId: document.chainId,
    provider: getAddress(document.provider),
    promise: promise as SignedHubPromise | null,
    preimage: document.latestPreimage,
    document: json as Json,
  };
}

/**
 * Reads one ProviderLedger document from the store; undefined when there is none.
 *
 * @throws {CliError} `STORE_DAMAGED` when the document is not one a ProviderLedger wrote.
 * @example
 * const ledger = await readLedger(store, 'chit/provider/31337/0x…/0x…');
 */
export async function readLedger(store: FileStore, key: string): Promise<StoredLedger | undefined> {
  const json = await readDocument(store, key);
  if (json === undefined) return undefined;
  const checked = checkLedger(key, await withCheckpoint(store, key, json));
  if (!('hub' in checked)) throw storeDamaged(store, key, `${checked.path}: ${checked.problem}`);
  return checked;
}

/** The JSON stored under `key`, undefined when there is none; STORE_DAMAGED when it does not parse. */
async function readDocument(store: FileStore, key: string): Promise<Json | undefined> {
  try {
    return await store.get(key);
  } catch (cause) {
    throw storeDamaged(store, key, undefined, cause as Error);
  }
}

/** The error for a damaged document under `key`: `problem` in words, or the `cause` that reading it threw. */
function storeDamaged(store: FileStore, key: string, problem?: string, cause?: Error): CliError {
  return new CliError(
    'STORE_DAMAGED',
    `The store ${store.directory} holds a damaged document under ${key}${problem ? `: ${problem}` : ''}`,
    'Restore it from a backup: move the file aside, then `chit store import <backup file>`.',
    cause ? { details: cause.message, cause } : undefined,
  );
}

/**
 * The document with the credited totals of its checkpoint (`<key>/credited`, where the ledger keeps the
 * totals that did not change lately) folded in, the higher of each: the whole of what the ledger knows,
 * as a backup must carry it. A document without a checkpoint is returned as it is.
 */
async function withCheckpoint(store: FileStore, key: string, json: Json): Promise<Json> {
  const at = creditedCheckpointKey(key);
  const stored = await readDocument(store, at);
  if (stored === undefined) return json;
  const checkpoint = creditedCheckpointDocument.safeParse(stored);
  if (!checkpoint.success) throw storeDamaged(store, at, checkpoint.error.issues[0]!.message);
  const document = json as { credited?: Record<string, string> };
  if (typeof document.credited !== 'object' || document.credited === null) return json;
  const credited = { ...document.credited };
  for (const [id, total] of Object.entries(checkpoint.data.credited)) {
    const current = credited[id];
    // A damaged total stays, for the document's check to name it.
    if (current === undefined || (/^(0|[1-9][0-9]*)$/.test(current) && total > BigInt(current))) {
      credited[id] = total.toString();
    }
  }
  return { ...(json as Record<string, Json>), credited } as Json;
}

/**
 * Every ProviderLedger document in the store (any chain, hub and provider), in key order.
 *
 * @throws {CliError} `STORE_DAMAGED` for a document that is not one a ProviderLedger wrote.
 * @example
 * const ledgers = await listLedgers(ctx.store());
 */
export async function listLedgers(
  store: FileStore,
  filter: { chainId?: number; hub?: Address; provider?: Address } = {},
): Promise<StoredLedger[]> {
  const ledgers: StoredLedger[] = [];
  for (const key of (await store.keys()).sort()) {
    const match = LEDGER_KEY.exec(key);
    if (!match) continue;
    if (filter.chainId !== undefined && match[1] !== String(filter.chainId)) continue;
    if (filter.hub && match[2] !== filter.hub.toLowerCase()) continue;
    if (filter.provider && match[3] !== filter.provider.toLowerCase()) continue;
    const ledger = await readLedger(store, key);
    if (ledger) ledgers.push(ledger);
  }
  return ledgers;
}

/**
 * The backup file's document for `ledgers`.
 *
 * @example
 * const json = encodeBackup(await listLedgers(store), new Date());
 */
export function encodeBackup(ledgers: readonly StoredLedger[], now: Date): Json {
  return {
    format: BACKUP_FORMAT,
    version: 1,
    exportedAt: now.toISOString(),
    ledgers: ledgers.map((ledger) => ({ key: ledger.key, document: ledger.document })),
  };
}

/**
 * Reads a backup file's text, checking every ledger in it as the ProviderLedger would, and that no key
 * appears twice.
 *
 * @throws {CliError} `INVALID_BACKUP` naming the file and what is wrong (the field and the problem).
 * @example
 * const backup = parseBackup(await readFile(file, 'utf8'), file);
 */
export function parseBackup(text: string, file: string): ProviderStoreBackup {
  const invalid = (problem: string) =>
    new CliError(
      'INVALID_BACKUP',
      `${file} is not a chit store backup: ${problem}`,
      'Nothing was imported. Give a file written by `chit store export <file>`, unchanged.',
    );
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw invalid('it is not JSON');
  }
  const result = backupSchema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const where = issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0]!] : issue.path;
    throw invalid(`${where.join('.') || '(the top level)'}: ${issue.message}`);
  }
  const seen = new Set<string>();
  const ledgers = result.data.ledgers.map(({ key, document }, index) => {
    if (seen.has(key)) throw invalid(`ledgers.${index}.key: ${key} appears twice`);
    seen.add(key);
    const checked = checkLedger(key, document);
    if (!('hub' in checked))
      throw invalid(
        `ledgers.${index}.${checked.path === 'key' ? 'key' : `document.${checked.path}`}: ${checked.problem}`,
      );
    return checked;
  });
  return { exportedAt: result.data.exportedAt, ledgers };
}

/**
 * Merges a backup into the store, never lowering a total: a ledger the store lacks is added; one the
 * store holds is replaced only by a backup whose hub promise total is higher and signed by the same
 * operator key as the stored one. Everything is checked before anything is written; importing the same
 * backup again changes nothing.
 *
 * @throws {CliError} `INVALID_BACKUP` when a higher promise is signed by another key than the stored one;
 * `STORE_DAMAGED` when the store's own document is damaged.
 * @example
 * const outcomes = await mergeBackup(ctx.store(), parseBackup(text, file), file);
 */
export async function mergeBackup(
  store: FileStore,
  backup: ProviderStoreBackup,
  file: string,
): Promise<ImportOutcome[]> {
  const outcomes: ImportOutcome[] = [];
  for (const [index, ledger] of backup.ledgers.entries()) {
    const stored = await readLedger(store, ledger.key);
    const storeTotal = stored?.promise?.total ?? null;
    if (!stored) {
      outcomes.push({ ledger, outcome: 'added', storeTotal });
      continue;
    }
    const newer = ledger.promise !== null && (storeTotal === null || ledger.promise.total > storeTotal);
    if (newer && stored.promise) {
      const signer = jsVerifier.recover(hubPromiseDigestBytes(stored.promise), stored.promise.signature);
      const backupSigner = jsVerifier.recover(hubPromiseDigestBytes(ledger.promise!), ledger.promise!.signature);
      if (!signer || !backupSigner || signer.toLowerCase() !== backupSigner.toLowerCase()) {
        throw new CliError(
          'INVALID_BACKUP',
          `${file} is not a chit store backup: ledgers.${index}.document.latest.signature: it is by ${backupSigner ?? 'no valid key'}, but the stored hub promise for ${ledger.key} is by ${signer ?? 'no valid key'}`,
          'Nothing was imported: a backup may replace a stored hub promise only with one signed by the same operator.',
        );
      }
    }
    outcomes.push({ ledger, outcome: newer ? 'updated' : 'kept', storeTotal });
  }
  for (const { ledger, outcome } of outcomes) {
    if (outcome !== 'kept') await store.put(ledger.key, ledger.document);
  }
  return outcomes;
}
