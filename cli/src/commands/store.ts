import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { chitTokenAbi, hubAbi } from '@chit/sdk';
import { Command } from 'commander';
import type { Address } from 'viem';
import { readContract } from 'viem/actions';
import { type CliContext, handler } from '../context.js';
import { CliError } from '../errors.js';
import { formatAmount, type Row } from '../output.js';
import { encodeBackup, listLedgers, mergeBackup, parseBackup, type StoredLedger } from '../provider-store.js';

/**
 * `chit store export|import <file>`: a provider backs up the hub promises and R its store holds, and
 * restores them, never lowering a total.
 *
 * @example
 * program.addCommand(storeCommand());
 */
export function storeCommand(): Command {
  const store = new Command('store').description(
    'Provider: back up and restore the store (--store) that holds your latest hub promises and their R',
  );
  store
    .command('export')
    .description("Write every hub promise and R of the store to <file> (mode 0600; '-' for stdout)")
    .argument('<file>', "the backup file, replaced atomically if it exists; '-' writes to stdout")
    .addHelpText(
      'after',
      '\nThe backup holds the documents of every ProviderLedger in the store: with it, `chit settle`\n' +
        'claims each hub promise on-chain even if the hub is gone. Keep it as safe as the keystore.',
    )
    .action(handler(runExport));
  store
    .command('import')
    .description("Merge a backup from <file> into the store ('-' for stdin), never lowering a total")
    .argument('<file>', 'a file written by `chit store export`')
    .addHelpText(
      'after',
      '\nFor each hub, the higher hub promise total wins: a ledger the store lacks is added, one whose\n' +
        'backup total is higher replaces the stored one, the others are kept. Importing twice changes\n' +
        'nothing. Stop the provider node using the store first: it would write over the import.',
    )
    .action(handler(runImport));
  return store;
}

async function runExport(ctx: CliContext, file: string): Promise<void> {
  const store = ctx.store();
  const ledgers = await listLedgers(store);
  if (ledgers.length === 0) {
    throw new CliError(
      'STORE_EMPTY',
      `The store ${store.directory} holds no provider ledger: there is nothing to export`,
      'Point --store (CHIT_STORE, or "store" in the config file) at the directory of your ProviderLedger\'s FileStore.',
    );
  }
  const text = `${JSON.stringify(encodeBackup(ledgers, new Date()), null, 2)}\n`;
  const target = file === '-' ? undefined : path.resolve(file);
  if (target) await writePrivately(target, text);
  else process.stdout.write(text);

  const amount = await amountFormatter(ctx, ledgers);
  const rows = ledgers.map((ledger) => describe(ledger, amount));
  const data = {
    file: target ?? '-',
    store: store.directory,
    ledgers: ledgers.map((ledger) => ({ ...summary(ledger), hasPreimage: ledger.preimage !== null })),
  };
  const headline = `Exported ${count(ledgers.length)} from the store ${store.directory} to ${target ? `${target} (mode 0600)` : 'stdout'}.`;
  if (!target) {
    // stdout holds the backup itself.
    ctx.out.progress([headline, ...rows].join('\n'));
    return;
  }
  ctx.out.result(data, [headline, ...rows]);
}

async function runImport(ctx: CliContext, file: string): Promise<void> {
  const source = file === '-' ? '-' : path.resolve(file);
  let text: string;
  try {
    text = source === '-' ? await readStdin() : await readFile(source, 'utf8');
  } catch (error) {
    throw new CliError(
      'BACKUP_UNREADABLE',
      `The backup ${source} cannot be read`,
      'Check the path and its permissions.',
      {
        details: (error as Error).message,
        cause: error,
      },
    );
  }
  const store = ctx.store();
  const backup = parseBackup(text, source === '-' ? 'stdin' : source);
  const outcomes = await mergeBackup(store, backup, source === '-' ? 'stdin' : source);

  const amount = await amountFormatter(
    ctx,
    outcomes.map(({ ledger }) => ledger),
  );
  const tally = (outcome: string) => outcomes.filter((entry) => entry.outcome === outcome).length;
  const rows = outcomes.map(({ ledger, outcome, storeTotal }) => {
    const was = storeTotal === null ? undefined : amount(ledger, storeTotal);
    const what =
      outcome === 'added'
        ? 'added'
        : outcome === 'updated'
          ? `replaces the store's ${was ?? 'ledger, which held none'}`
          : `the store keeps its ${was ?? 'ledger'}`;
    return describe(ledger, amount, what);
  });
  ctx.out.result(
    {
      file: source,
      store: store.directory,
      exportedAt: backup.exportedAt,
      added: tally('added'),
      updated: tally('updated'),
      kept: tally('kept'),
      ledgers: outcomes.map(({ ledger, outcome, storeTotal }) => ({
        ...summary(ledger),
        outcome,
        storeTotalBaseUnits: storeTotal === null ? null : storeTotal.toString(),
      })),
    },
    [
      `Imported ${source === '-' ? 'stdin' : source} into the store ${store.directory}: ${tally('added')} added, ${tally('updated')} updated, ${tally('kept')} kept.`,
      ...rows,
    ],
  );
}

type AmountFormatter = (ledger: StoredLedger, amount: bigint) => string;

/** A ledger in JSON: where it is, and its hub promise total in the token's base units. */
function summary(ledger: StoredLedger) {
  return {
    key: ledger.key,
    hub: ledger.hub,
    chainId: ledger.chainId,
    provider: ledger.provider,
    totalBaseUnits: ledger.promise ? ledger.promise.total.toString() : null,
  };
}

/** A ledger in words: `0xProvider at the hub 0xHub (chain 1): hub promise of 12 CHIT`. */
function describe(ledger: StoredLedger, amount: AmountFormatter, outcome?: string): Row {
  const promise = ledger.promise
    ? `hub promise of ${amount(ledger, ledger.promise.total)}${ledger.preimage ? '' : ', without its R'}`
    : 'no hub promise yet';
  return [
    `${ledger.provider} at ${ledger.hub} (chain ${ledger.chainId})`,
    outcome ? `${promise}: ${outcome}` : promise,
  ];
}

/**
 * Amounts in tokens when the RPC node (if one is set) can tell the hub's token, else in base units: the
 * store commands work offline.
 */
async function amountFormatter(ctx: CliContext, ledgers: readonly StoredLedger[]): Promise<AmountFormatter> {
  const tokens = new Map<string, { decimals: number; symbol: string }>();
  if (ctx.config.rpcUrl) {
    try {
      const client = await ctx.publicClient();
      const hubs = new Set(ledgers.filter((ledger) => ledger.chainId === client.chain.id).map((ledger) => ledger.hub));
      for (const hub of hubs) {
        const token = await readContract(client, { address: hub as Address, abi: hubAbi, functionName: 'token' });
        const [decimals, symbol] = await Promise.all([
          readContract(client, { address: token, abi: chitTokenAbi, functionName: 'decimals' }),
          readContract(client, { address: token, abi: chitTokenAbi, functionName: 'symbol' }),
        ]);
        tokens.set(hub, { decimals, symbol });
      }
    } catch {
      // No node, or not this chain's: base units.
    }
  }
  return (ledger, amount) => {
    const token = tokens.get(ledger.hub);
    return token ? `${formatAmount(amount, token.decimals)} ${token.symbol}` : `${amount} base units`;
  };
}

function count(ledgers: number): string {
  return ledgers === 1 ? '1 ledger' : `${ledgers} ledgers`;
}

/** Writes `text` to `file` with mode 0600, atomically: a temporary file, fsync, rename. */
async function writePrivately(file: string, text: string): Promise<void> {
  const temporary = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const handle = await open(temporary, 'wx', 0o600);
    try {
      await handle.chmod(0o600); // whatever the umask
      await handle.writeFile(text, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, file);
  } catch (error) {
    await rm(temporary, { force: true });
    throw new CliError(
      'BACKUP_UNWRITABLE',
      `The backup ${file} cannot be written`,
      'Check the directory and its permissions.',
      {
        details: (error as Error).message,
        cause: error,
      },
    );
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
