import {
  chitTokenAbi,
  decodeContractError,
  HubClient,
  type HubServiceInfo,
  hubAbi,
  registryAbi,
  waitForTransaction,
} from '@chit/sdk';
import { FileStore, nativeAccount, nodeHubHttp } from '@chit/sdk/node';
import type { Command } from 'commander';
import {
  type Account,
  type Address,
  BaseError,
  type Chain,
  createPublicClient,
  createWalletClient,
  defineChain,
  type Hash,
  http,
  isAddressEqual,
  type LocalAccount,
  type PublicClient,
  type TransactionReceipt,
  type Transport,
  type WalletClient,
} from 'viem';
import { readContract } from 'viem/actions';
import { type CliConfig, type GlobalFlags, loadConfig } from './config.js';
import { CliError, toErrorReport } from './errors.js';
import { keystorePassword, type LockedKeystore, readKeystore, unlockKeystore } from './keystore.js';
import { formatAmount, Output, type TokenInfo } from './output.js';

/** The options every command takes: configuration flags and `--json`. */
export interface GlobalOptions extends GlobalFlags {
  json?: boolean | undefined;
}

/** A wallet client with the identity's account and the RPC's chain. */
export type CliWalletClient = WalletClient<Transport, Chain, Account>;

/**
 * What a command works with, resolved lazily and once: the configuration, the RPC and hub clients,
 * the hub and its token, and the identity (its address without the password; its key with it).
 * Every missing piece is a {@link CliError} that says how to provide it.
 *
 * @example
 * const ctx = await CliContext.create({ rpcUrl: 'http://127.0.0.1:8545', json: false });
 * const { balance } = await getConsumerChannel(await ctx.publicClient(), { hub: await ctx.hub(), consumer });
 */
export class CliContext {
  readonly config: CliConfig;
  readonly out: Output;
  #publicClient: Promise<PublicClient<Transport, Chain>> | undefined;
  #hubInfo: Promise<HubServiceInfo> | undefined;
  #hub: Promise<Address> | undefined;
  #registry: Promise<Address> | undefined;
  #token: Promise<TokenInfo> | undefined;
  #keystore: Promise<LockedKeystore> | undefined;
  #account: Promise<LocalAccount> | undefined;
  #store: FileStore | undefined;
  /** The token once loaded, for formatting amounts in error hints. */
  tokenInfo: TokenInfo | undefined;

  private constructor(config: CliConfig, out: Output) {
    this.config = config;
    this.out = out;
  }

  /**
   * Loads the configuration (flags > environment > config file) for a command.
   *
   * @example
   * const ctx = await CliContext.create(command.optsWithGlobals());
   */
  static async create(options: GlobalOptions, out = new Output({ json: options.json === true })): Promise<CliContext> {
    return new CliContext(await loadConfig(options), out);
  }

  /**
   * The RPC URL, or a {@link CliError} saying how to set one.
   *
   * @example
   * const url = ctx.rpcUrl();
   */
  rpcUrl(): string {
    const setting = this.config.rpcUrl;
    if (!setting) {
      throw new CliError(
        'RPC_URL_MISSING',
        'No RPC URL is set: chit needs a node of the hub’s chain',
        `Pass --rpc-url <url>, set CHIT_RPC_URL, or add "rpcUrl" to ${this.config.configPath}.`,
      );
    }
    return setting.value;
  }

  /**
   * A public client for the RPC, on a chain whose id is read from the node.
   *
   * @example
   * const block = await (await ctx.publicClient()).getBlockNumber();
   */
  publicClient(): Promise<PublicClient<Transport, Chain>> {
    this.#publicClient ??= (async () => {
      const url = this.rpcUrl();
      const probe = createPublicClient({ transport: http(url, { retryCount: 1 }) });
      let id: number;
      try {
        id = await probe.getChainId();
      } catch (error) {
        throw decodeContractError(error);
      }
      const chain = defineChain({
        id,
        name: `chain ${id}`,
        nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
        rpcUrls: { default: { http: [url] } },
      });
      return createPublicClient({ chain, transport: http(url), pollingInterval: 1_000 });
    })();
    return this.#publicClient;
  }

  /**
   * A wallet client that signs and sends with the identity's key (asks for the keystore password).
   *
   * @example
   * await deposit(await ctx.walletClient(), { hub, amount });
   */
  async walletClient(): Promise<CliWalletClient> {
    const publicClient = await this.publicClient();
    const account = await this.account();
    return createWalletClient({
      account,
      chain: publicClient.chain,
      transport: http(this.rpcUrl()),
      pollingInterval: 1_000,
    });
  }

  /**
   * A client of the configured hub's HTTP API, or undefined when no hub URL is set.
   *
   * @example
   * const hubClient = ctx.hubClient();
   */
  hubClient(): HubClient | undefined {
    const url = this.config.hubUrl?.value;
    // node:http, not fetch: `chit provide` exchanges at the hub for every paid request or invoice.
    return url ? new HubClient({ url, retry: { attempts: 3 }, http: nodeHubHttp() }) : undefined;
  }

  /**
   * The hub client, or a {@link CliError} saying how to set the hub URL.
   *
   * @example
   * const quote = await ctx.requireHubClient('settle').settlementQuote(provider);
   */
  requireHubClient(what: string): HubClient {
    const client = this.hubClient();
    if (!client) {
      throw new CliError(
        'HUB_URL_MISSING',
        `No hub URL is set: ${what} needs the hub's service`,
        `Pass --hub-url <url>, set CHIT_HUB_URL, or add "hubUrl" to ${this.config.configPath} (\`chit hubs\` lists the URLs).`,
      );
    }
    return client;
  }

  /**
   * The hub's `/v1/info`, checked against the RPC's chain and the configured hub address.
   *
   * @example
   * const { publicKey } = await ctx.hubInfo();
   */
  hubInfo(): Promise<HubServiceInfo> {
    this.#hubInfo ??= (async () => {
      const info = await this.requireHubClient('this command').info();
      const configured = this.config.hub;
      if (configured && !isAddressEqual(configured.value, info.hub)) {
        throw new CliError(
          'HUB_MISMATCH',
          `The hub at ${this.config.hubUrl?.value} serves the contract ${info.hub}, not ${configured.value} (${configured.source})`,
          'Fix or drop one of the two settings: the hub address is read from the hub URL when only the URL is set.',
        );
      }
      if (this.config.rpcUrl) {
        const chainId = (await this.publicClient()).chain.id;
        if (info.chainId !== chainId) {
          throw new CliError(
            'CHAIN_MISMATCH',
            `The hub is on chain ${info.chainId}, but the RPC node is on chain ${chainId}`,
            "Point --rpc-url (or CHIT_RPC_URL) at a node of the hub's chain.",
          );
        }
      }
      return info;
    })();
    return this.#hubInfo;
  }

  /**
   * The Hub contract: `--hub` / `CHIT_HUB` / the config file, else the hub service's `/v1/info`.
   *
   * @example
   * const hub = await ctx.hub();
   */
  hub(): Promise<Address> {
    this.#hub ??= (async () => {
      if (this.config.hub && !this.config.hubUrl) return this.config.hub.value;
      if (this.config.hubUrl) return (await this.hubInfo()).hub;
      throw new CliError(
        'HUB_MISSING',
        'No hub is set',
        `Pass --hub-url <url> (the hub's service; its address is read from it) or --hub <address>, or set CHIT_HUB_URL or CHIT_HUB (\`chit hubs\` lists them).`,
      );
    })();
    return this.#hub;
  }

  /**
   * Makes `hub` the command's hub, for a hub found without its service (in the provider's store): the
   * token and the Registry are then read from it.
   *
   * @example
   * ctx.useHub(stored.hub);
   * const { symbol } = await ctx.token();
   */
  useHub(hub: Address): void {
    this.#hub = Promise.resolve(hub);
  }

  /**
   * The hub if one is configured (or given with {@link useHub}), else undefined (for commands that work
   * without one).
   *
   * @example
   * const hub = await ctx.optionalHub();
   */
  async optionalHub(): Promise<Address | undefined> {
    if (this.#hub) return this.#hub;
    return this.config.hub || this.config.hubUrl ? this.hub() : undefined;
  }

  /**
   * The Registry: `--registry` / `CHIT_REGISTRY` / the config file, else the one that created the hub.
   *
   * @example
   * const { hubs } = await listHubs(client, { registry: await ctx.registry() });
   */
  registry(): Promise<Address> {
    this.#registry ??= (async () => {
      if (this.config.registry) return this.config.registry.value;
      if (!this.#hub && !this.config.hub && !this.config.hubUrl) {
        throw new CliError(
          'REGISTRY_MISSING',
          'No Registry is set',
          'Pass --registry <address> or set CHIT_REGISTRY (or set a hub with --hub-url: its Registry is read from it).',
        );
      }
      const hub = await this.hub();
      const client = await this.publicClient();
      return this.#read(() => readContract(client, { address: hub, abi: hubAbi, functionName: 'registry' }));
    })();
    return this.#registry;
  }

  /**
   * The hub's token (or, without a hub, the Registry's): its address, decimals and symbol.
   *
   * @example
   * const { decimals } = await ctx.token();
   */
  token(): Promise<TokenInfo> {
    this.#token ??= (async () => {
      const client = await this.publicClient();
      const hub = await this.optionalHub();
      const address = hub
        ? await this.#read(() => readContract(client, { address: hub, abi: hubAbi, functionName: 'token' }))
        : await (async () => {
            const registry = await this.registry();
            return this.#read(() =>
              readContract(client, { address: registry, abi: registryAbi, functionName: 'token' }),
            );
          })();
      const [decimals, symbol] = await this.#read(() =>
        Promise.all([
          readContract(client, { address, abi: chitTokenAbi, functionName: 'decimals' }),
          readContract(client, { address, abi: chitTokenAbi, functionName: 'symbol' }),
        ]),
      );
      this.tokenInfo = { address, decimals, symbol };
      return this.tokenInfo;
    })();
    return this.#token;
  }

  /**
   * Tokens in base units as the user reads them: `12.5 CHIT` (the token must be loaded).
   *
   * @example
   * ctx.format(12500000000000000000n); // '12.5 CHIT'
   */
  format(amount: bigint): string {
    const token = this.tokenInfo;
    return token ? `${formatAmount(amount, token.decimals)} ${token.symbol}` : `${amount} (base units)`;
  }

  /**
   * The provider's store: the `FileStore` in the configured directory (`--store`, `CHIT_STORE`, "store").
   *
   * @example
   * const keys = await ctx.store().keys();
   */
  store(): FileStore {
    this.#store ??= new FileStore(this.config.store.value);
    return this.#store;
  }

  /**
   * The identity's keystore, read (not unlocked).
   *
   * @example
   * const { path } = await ctx.keystore();
   */
  keystore(): Promise<LockedKeystore> {
    this.#keystore ??= readKeystore(this.config.keystore.value);
    return this.#keystore;
  }

  /**
   * The identity's address, without asking for the password when the keystore states it.
   *
   * @example
   * const me = await ctx.address();
   */
  async address(): Promise<Address> {
    return (await this.keystore()).address ?? (await this.account()).address;
  }

  /**
   * The identity's account: the keystore unlocked with CHIT_PASSWORD or a password typed on the terminal.
   *
   * @example
   * const signature = await (await ctx.account()).signMessage({ message: 'hello' });
   */
  account(): Promise<LocalAccount> {
    this.#account ??= (async () => {
      const keystore = await this.keystore();
      const key = await unlockKeystore(keystore, await keystorePassword(keystore.path));
      return nativeAccount(key);
    })();
    return this.#account;
  }

  /**
   * Waits for a transaction with a progress line on stderr: `waiting for confirmation (1/2): approve 0x…`.
   *
   * @example
   * await ctx.confirmation(hash, 'deposit', 2, 2);
   */
  async confirmation(hash: Hash, what: string, step = 1, steps = 1): Promise<TransactionReceipt> {
    this.out.progress(`waiting for confirmation (${step}/${steps}): ${what} ${hash}…`);
    return waitForTransaction(await this.publicClient(), { hash });
  }

  async #read<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw decodeContractError(error);
    }
  }
}

/**
 * Wraps a command's handler: builds its {@link CliContext} from the global options, and reports any
 * failure (in words, or as JSON with `--json`) with exit code 1.
 *
 * @example
 * new Command('balance').action(handler(async (ctx) => { ... }));
 */
export function handler<Args extends unknown[]>(
  run: (ctx: CliContext, ...args: Args) => Promise<void>,
): (...args: unknown[]) => Promise<void> {
  return async (...args: unknown[]) => {
    const command = args.at(-1) as Command;
    const globals = command.optsWithGlobals<GlobalOptions>();
    const out = new Output({ json: globals.json === true });
    let ctx: CliContext | undefined;
    try {
      ctx = await CliContext.create(globals, out);
      // commander passes the positional arguments, then the command's options, then the command.
      await run(ctx, ...(args.slice(0, -1) as Args));
    } catch (error) {
      if (process.env.CHIT_DEBUG) console.error(error);
      const report = toErrorReport(error instanceof BaseError ? decodeContractError(error) : error, (amount) =>
        ctx ? ctx.format(amount) : String(amount),
      );
      out.error(report);
      process.exitCode = 1;
    }
  };
}
