import { readFile } from 'node:fs/promises';
import { chitTokenAbi, decodeContractError, getConsumerChannel, getProviderChannel, registryAbi } from '@chit/sdk';
import { Command, Option } from 'commander';
import {
  type Account,
  type Address,
  BaseError,
  type Chain,
  createWalletClient,
  type Hex,
  http,
  MethodNotFoundRpcError,
  MethodNotSupportedRpcError,
  parseAbi,
  type Transport,
  toHex,
  UnknownRpcError,
  type WalletClient,
} from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { readContract, simulateContract, writeContract } from 'viem/actions';
import { type CliContext, handler } from '../context.js';
import { CliError } from '../errors.js';
import { keystorePassword, writeKeystore } from '../keystore.js';
import { formatAmount, parseAmount, type Row } from '../output.js';
import { readSecret } from '../prompt.js';

const LIGHT_KDF = 'cheaper scrypt (as geth --lightkdf): unlocks faster, and is as much easier to brute-force';

/** The chain id of the local development chain (anvil and Hardhat's default; `npm start` runs one). */
export const LOCAL_CHAIN_ID = 31337;

/** The one call `chit identity fund` makes to the local deployment's TestToken (contracts/mocks). */
const testTokenMintAbi = parseAbi(['function mint(address to, uint256 amount)']);

/**
 * `chit identity new|import|show|fund`: the key that signs for the user, kept in an encrypted keystore.
 *
 * @example
 * program.addCommand(identityCommand());
 */
export function identityCommand(): Command {
  const identity = new Command('identity').description(
    'Create, import or show the identity (the key chit signs with, in an encrypted keystore)',
  );
  identity
    .command('new')
    .description('Create a new key and save it as an encrypted JSON keystore (scrypt)')
    .option('--force', 'replace an existing keystore (its key is lost unless backed up)')
    .option('--light-kdf', LIGHT_KDF)
    .addHelpText(
      'after',
      '\nThe keystore goes to --keystore (CHIT_KEYSTORE), by default keystore.json beside the config file.\n' +
        'The password is CHIT_PASSWORD, or asked twice on the terminal. The key itself is never printed.',
    )
    .action(handler(runNew));
  identity
    .command('import')
    .description('Import a private key into an encrypted keystore, from stdin or a file')
    .option('--private-key-file <path>', 'read the key (64 hex digits, 0x optional) from this file')
    .option('--force', 'replace an existing keystore (its key is lost unless backed up)')
    .option('--light-kdf', LIGHT_KDF)
    .addHelpText(
      'after',
      '\nWithout --private-key-file the key is read from stdin (typed without echo on a terminal):\n' +
        '  chit identity import < key.txt\n' +
        'Never pass a key as an argument: it would stay in the shell history.',
    )
    .action(handler(runImport));
  identity
    .command('show')
    .description('Show the address, its registration and beneficiary, and its balances')
    .action(handler(runShow));
  identity
    .command('fund')
    .description(
      `Local chain only (chain ${LOCAL_CHAIN_ID}, as npm start runs): give the identity ETH for gas and test tokens`,
    )
    .addOption(new Option('--eth <amount>', 'ETH to add to its balance').default('10'))
    .addOption(
      new Option('--tokens <amount>', "test tokens to mint to it (the hub's TestToken; 0 for none)").default('1000'),
    )
    .addHelpText(
      'after',
      '\nFor development on a local chain: the ETH comes from the node (anvil_setBalance), the tokens from\n' +
        "the TestToken's public mint, sent by the node's last development account (--eth 0: tokens and no\n" +
        `gas, as for \`chit beneficiary set --relayed\`). On any chain but ${LOCAL_CHAIN_ID} it refuses and changes\n` +
        'nothing: there, send the identity ETH and tokens from a wallet of yours.',
    )
    .action(handler(runFund));
  return identity;
}

interface WriteOptions {
  force?: boolean;
  lightKdf?: boolean;
}

async function runNew(ctx: CliContext, options: WriteOptions): Promise<void> {
  const file = ctx.config.keystore.value;
  const password = await keystorePassword(file, { repeat: true });
  const address = await writeKeystore(file, generatePrivateKey(), password, {
    force: options.force === true,
    light: options.lightKdf === true,
  });
  report(ctx, address, file, 'created');
}

async function runImport(ctx: CliContext, options: WriteOptions & { privateKeyFile?: string }): Promise<void> {
  const text = options.privateKeyFile
    ? await readKeyFile(options.privateKeyFile)
    : process.stdin.isTTY
      ? await readSecret('Private key: ', '')
      : await readStdin();
  const key = parsePrivateKey(text, options.privateKeyFile ? options.privateKeyFile : 'stdin');
  const file = ctx.config.keystore.value;
  const password = await keystorePassword(file, { repeat: true });
  const address = await writeKeystore(file, key, password, {
    force: options.force === true,
    light: options.lightKdf === true,
  });
  report(ctx, address, file, 'imported');
}

function report(ctx: CliContext, address: Address, keystore: string, action: 'created' | 'imported'): void {
  ctx.out.result({ address, keystore }, [
    ['Address', address],
    ['Keystore', keystore],
    '',
    `Identity ${action}. Back up the keystore file and its password: without both, the key is lost.`,
    `Send the address some ETH for gas before it sends transactions (on a local chain, chain ${LOCAL_CHAIN_ID}: \`chit identity fund\`).`,
  ]);
}

async function readKeyFile(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    throw new CliError(
      'KEY_FILE_UNREADABLE',
      `The key file ${file} cannot be read`,
      'Check the path and permissions.',
      {
        details: (error as Error).message,
      },
    );
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function parsePrivateKey(text: string, source: string): Hex {
  const trimmed = text.trim();
  if (trimmed === '') {
    throw new CliError(
      'INVALID_PRIVATE_KEY',
      `No private key on ${source}`,
      'Pipe the key in (`chit identity import < key.txt`) or pass --private-key-file <path>.',
    );
  }
  const key = (trimmed.startsWith('0x') ? trimmed : `0x${trimmed}`).toLowerCase() as Hex;
  const invalid = new CliError(
    'INVALID_PRIVATE_KEY',
    `What ${source} holds is not a private key`,
    'Give 32 bytes as 64 hex digits, with or without 0x, and nothing else.',
  );
  if (!/^0x[0-9a-f]{64}$/.test(key)) throw invalid;
  try {
    privateKeyToAccount(key);
  } catch {
    throw invalid;
  }
  return key;
}

async function runShow(ctx: CliContext): Promise<void> {
  const keystore = await ctx.keystore();
  const address = await ctx.address();
  const data: Record<string, unknown> = { address, keystore: keystore.path };
  const rows: (Row | string)[] = [
    ['Address', address],
    ['Keystore', keystore.path],
  ];
  if (!ctx.config.rpcUrl) {
    ctx.out.warn('no RPC URL is set (--rpc-url or CHIT_RPC_URL): registration and balances are not shown');
    ctx.out.result(data, rows);
    return;
  }
  const client = await ctx.publicClient();
  const eth = await client.getBalance({ address });
  data.chainId = client.chain.id;
  data.eth = formatAmount(eth, 18);
  rows.push(['ETH (gas)', formatAmount(eth, 18)]);

  const hub = await ctx.optionalHub();
  if (!hub && !ctx.config.registry) {
    ctx.out.warn('no hub or Registry is set (--hub-url, --hub or --registry): registration and tokens are not shown');
    ctx.out.result(data, rows);
    return;
  }
  const registry = await ctx.registry();
  const token = await ctx.token();
  const [registered, beneficiary, tokens] = await Promise.all([
    readContract(client, { address: registry, abi: registryAbi, functionName: 'isRegistered', args: [address] }),
    readContract(client, { address: registry, abi: registryAbi, functionName: 'beneficiaryOf', args: [address] }),
    readContract(client, { address: token.address, abi: chitTokenAbi, functionName: 'balanceOf', args: [address] }),
  ]);
  Object.assign(data, { registry, registered, beneficiary, token, tokens: formatAmount(tokens, token.decimals) });
  rows.push(
    ['Tokens', ctx.format(tokens)],
    ['Registered', registered ? `yes, in the Registry ${registry}` : `no (Registry ${registry})`],
    ['Beneficiary', beneficiary === address ? `${beneficiary} (itself)` : beneficiary],
  );
  if (hub) {
    const [channel, provider] = await Promise.all([
      getConsumerChannel(client, { hub, consumer: address }),
      getProviderChannel(client, { hub, provider: address, registry }),
    ]);
    Object.assign(data, {
      hub,
      channel: formatAmount(channel.balance, token.decimals),
      providerSettled: formatAmount(provider.settled, token.decimals),
    });
    rows.push(
      ['Hub', hub],
      ['Channel', `${ctx.format(channel.balance)} deposited (\`chit balance\` for details)`],
      ['Earned, settled', ctx.format(provider.settled)],
    );
  }
  ctx.out.result(data, rows);
}

async function runFund(ctx: CliContext, options: { eth: string; tokens: string }): Promise<void> {
  const client = await ctx.publicClient();
  const chainId = client.chain.id;
  if (chainId !== LOCAL_CHAIN_ID) {
    throw new CliError(
      'NOT_A_LOCAL_CHAIN',
      `chit identity fund works only on a local development chain (chain ${LOCAL_CHAIN_ID}); the RPC node at ${ctx.rpcUrl()} is on chain ${chainId}`,
      'Send the identity ETH for gas, and tokens, from a wallet of yours: `chit identity show` prints its address.',
    );
  }
  const eth = parseAmount(options.eth, 18, { allowZero: true });
  const hub = await ctx.optionalHub();
  const tokenSet = hub !== undefined || ctx.config.registry !== undefined;
  const token = tokenSet ? await ctx.token() : undefined;
  const tokens = token ? parseAmount(options.tokens, token.decimals, { allowZero: true }) : 0n;
  const address = await ctx.address();

  const ethBalance = (await client.getBalance({ address })) + eth;
  if (eth > 0n) await setBalance(ctx, address, ethBalance);

  let transaction: Hex | null = null;
  if (token && tokens > 0n) {
    const wallet = await minter(ctx);
    const mint = {
      address: token.address,
      abi: testTokenMintAbi,
      functionName: 'mint',
      args: [address, tokens],
    } as const;
    try {
      await simulateContract(client, { ...mint, account: wallet.account });
    } catch (error) {
      throw new CliError(
        'NOT_A_TEST_TOKEN',
        `The hub's token ${token.address} mints nothing to ${address}: it is not a TestToken`,
        "Send the identity tokens from a wallet that holds them; only Chit's local deployment (npm start) has a TestToken.",
        { details: decodeContractError(error).shortMessage },
      );
    }
    transaction = await writeContract(wallet, mint);
    await ctx.confirmation(transaction, 'mint');
  } else if (!token) {
    ctx.out.warn('no hub or Registry is set (--hub-url, --hub or --registry): ETH only, no tokens minted');
  }
  const tokenBalance = token
    ? await readContract(client, {
        address: token.address,
        abi: chitTokenAbi,
        functionName: 'balanceOf',
        args: [address],
      })
    : undefined;

  ctx.out.result(
    {
      address,
      chainId,
      eth: formatAmount(eth, 18),
      ethBalance: formatAmount(ethBalance, 18),
      token: token?.address ?? null,
      tokens: token ? formatAmount(tokens, token.decimals) : '0',
      tokenBalance: token && tokenBalance !== undefined ? formatAmount(tokenBalance, token.decimals) : null,
      transaction,
    },
    [
      `Funded ${address} on the local chain ${chainId}.`,
      ['ETH (gas)', `+${formatAmount(eth, 18)}, now ${formatAmount(ethBalance, 18)}`],
      [
        'Tokens',
        token && tokenBalance !== undefined ? `+${ctx.format(tokens)}, now ${ctx.format(tokenBalance)}` : undefined,
      ],
      ['Transaction', transaction ?? undefined],
    ],
  );
}

/**
 * Who sends the mint: the node's last development account (anvil's and Hardhat's are unlocked), so that
 * an identity funded with tokens only (`--eth 0`) needs no gas, and no password is asked; else the
 * identity itself. Not the first: under `npm start` it is the hub's operator and relayer, whose nonces
 * the hub allocates itself.
 */
async function minter(ctx: CliContext): Promise<WalletClient<Transport, Chain, Account>> {
  const client = await ctx.publicClient();
  const request = client.request as (args: { method: string; params?: unknown[] }) => Promise<unknown>;
  const accounts = (await request({ method: 'eth_accounts' }).catch(() => [])) as Address[];
  if (accounts.length === 0) return ctx.walletClient();
  return createWalletClient({ account: accounts.at(-1)!, chain: client.chain, transport: http(ctx.rpcUrl()) });
}

/** Sets the account's ETH balance through the node's development method: anvil's, else Hardhat's. */
async function setBalance(ctx: CliContext, address: Address, value: bigint): Promise<void> {
  const client = await ctx.publicClient();
  const request = client.request as (args: { method: string; params: unknown[] }) => Promise<unknown>;
  for (const method of ['anvil_setBalance', 'hardhat_setBalance']) {
    try {
      await request({ method, params: [address, toHex(value)] });
      return;
    } catch (error) {
      if (!unsupported(error)) throw decodeContractError(error);
    }
  }
  throw new CliError(
    'NOT_A_LOCAL_CHAIN',
    `The RPC node at ${ctx.rpcUrl()} is on chain ${LOCAL_CHAIN_ID} but sets no balances (neither anvil_setBalance nor hardhat_setBalance)`,
    'Use the chain of `npm start` (anvil), or send the identity ETH from a funded account.',
  );
}

/** Whether the node answered that it lacks the method. */
function unsupported(error: unknown): boolean {
  return (
    error instanceof BaseError &&
    error.walk(
      (cause) =>
        cause instanceof MethodNotFoundRpcError ||
        cause instanceof MethodNotSupportedRpcError ||
        (cause instanceof UnknownRpcError && /method|not (found|supported|available)/i.test(cause.details)),
    ) !== null
  );
}
