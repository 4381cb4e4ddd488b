import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { normalizeHubUrl } from '@chit/sdk';
import { type Address, getAddress, isAddress } from 'viem';
import { CliError } from './errors.js';

/** The configuration flags every command takes (commander's camel-cased option values). */
export interface GlobalFlags {
  rpcUrl?: string | undefined;
  keystore?: string | undefined;
  hubUrl?: string | undefined;
  hub?: string | undefined;
  registry?: string | undefined;
  store?: string | undefined;
  config?: string | undefined;
}

/** A configured value and where it came from: a flag, an environment variable or the config file. */
export interface Setting<T> {
  value: T;
  /** `--rpc-url`, `CHIT_RPC_URL`, or `<config file> (rpcUrl)`. */
  source: string;
}

/** The resolved configuration: flags over the environment over the config file. */
export interface CliConfig {
  /** The config file read, or that would have been read. */
  configPath: string;
  /** Whether that file exists. */
  configFileFound: boolean;
  rpcUrl: Setting<string> | undefined;
  hubUrl: Setting<string> | undefined;
  hub: Setting<Address> | undefined;
  registry: Setting<Address> | undefined;
  /** The keystore; `keystore.json` beside the default config file unless set. */
  keystore: Setting<string>;
  /**
   * The provider's store: the directory of the `FileStore` its `ProviderLedger` writes to; `store/`
   * beside the default config file unless set.
   */
  store: Setting<string>;
}

interface Key {
  flag: keyof GlobalFlags;
  option: string;
  env: string;
  file: string;
}

const KEYS = {
  rpcUrl: { flag: 'rpcUrl', option: '--rpc-url', env: 'CHIT_RPC_URL', file: 'rpcUrl' },
  keystore: { flag: 'keystore', option: '--keystore', env: 'CHIT_KEYSTORE', file: 'keystore' },
  hubUrl: { flag: 'hubUrl', option: '--hub-url', env: 'CHIT_HUB_URL', file: 'hubUrl' },
  hub: { flag: 'hub', option: '--hub', env: 'CHIT_HUB', file: 'hub' },
  registry: { flag: 'registry', option: '--registry', env: 'CHIT_REGISTRY', file: 'registry' },
  store: { flag: 'store', option: '--store', env: 'CHIT_STORE', file: 'store' },
} as const satisfies Record<string, Key>;

type FileKey = (typeof KEYS)[keyof typeof KEYS]['file'];

/**
 * The config file read when `--config` is not given: `$XDG_CONFIG_HOME/chit/config.json`, or
 * `~/.config/chit/config.json`.
 *
 * @example
 * defaultConfigPath({ XDG_CONFIG_HOME: '/tmp/x' }); // '/tmp/x/chit/config.json'
 */
export function defaultConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CONFIG_HOME;
  const base = xdg && path.isAbsolute(xdg) ? xdg : path.join(homedir(), '.config');
  return path.join(base, 'chit', 'config.json');
}

/**
 * Resolves the configuration: each value from its flag, else its `CHIT_*` variable, else the config
 * file (`--config`, or {@link defaultConfigPath}). Values are checked here, once; a bad one stops the
 * command with a message that names where it came from.
 *
 * @throws {CliError} `INVALID_CONFIG` for an unreadable file, an unknown key or a bad value;
 * `CONFIG_MISSING` when the file given with `--config` does not exist.
 * @example
 * const config = await loadConfig({ rpcUrl: 'http://127.0.0.1:8545' }, process.env);
 * config.rpcUrl?.source; // '--rpc-url'
 */
export async function loadConfig(flags: GlobalFlags, env: NodeJS.ProcessEnv = process.env): Promise<CliConfig> {
  const explicit = flags.config ?? undefined;
  const configPath = path.resolve(explicit ?? defaultConfigPath(env));
  const file = await readConfigFile(configPath, explicit !== undefined);

  const pick = (key: Key): Setting<string> | undefined => {
    const flag = flags[key.flag];
    if (flag !== undefined && flag !== '') return { value: flag, source: key.option };
    const fromEnv = env[key.env];
    if (fromEnv !== undefined && fromEnv !== '') return { value: fromEnv, source: key.env };
    const fromFile = file?.[key.file as FileKey];
    if (fromFile !== undefined) return { value: fromFile, source: `${configPath} (${key.file})` };
    return undefined;
  };

  // A path from the config file is relative to that file; the defaults sit beside the default config file.
  const localPath = (key: Key, fallback: string): Setting<string> => {
    const setting = pick(key);
    if (!setting) return { value: path.join(path.dirname(defaultConfigPath(env)), fallback), source: 'default' };
    const fromFile = setting.source !== key.env && setting.source !== key.option;
    return {
      value: fromFile ? path.resolve(path.dirname(configPath), setting.value) : path.resolve(setting.value),
      source: setting.source,
    };
  };
  return {
    configPath,
    configFileFound: file !== undefined,
    rpcUrl: check(pick(KEYS.rpcUrl), rpcUrl),
    hubUrl: check(pick(KEYS.hubUrl), hubUrl),
    hub: check(pick(KEYS.hub), address),
    registry: check(pick(KEYS.registry), address),
    keystore: localPath(KEYS.keystore, 'keystore.json'),
    store: localPath(KEYS.store, 'store'),
  };
}

async function readConfigFile(configPath: string, explicit: boolean): Promise<Record<FileKey, string> | undefined> {
  let text: string;
  try {
    text = await readFile(configPath, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && !explicit) return undefined;
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new CliError('CONFIG_MISSING', `The config file ${configPath} does not exist`, 'Check the --config path.');
    }
    throw new CliError('INVALID_CONFIG', `The config file ${configPath} cannot be read`, 'Check its permissions.', {
      cause: error,
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new CliError(
      'INVALID_CONFIG',
      `The config file ${configPath} is not valid JSON`,
      'Fix it, or point --config at another file.',
      { details: (cause as Error).message, cause },
    );
  }
  const allowed = Object.values(KEYS).map((key) => key.file) as string[];
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new CliError(
      'INVALID_CONFIG',
      `The config file ${configPath} is not a JSON object`,
      `Write an object with some of the keys ${allowed.join(', ')}.`,
    );
  }
  for (const [key, value] of Object.entries(json)) {
    if (!allowed.includes(key)) {
      throw new CliError(
        'INVALID_CONFIG',
        `The config file ${configPath} has an unknown key "${key}"`,
        `Remove it; the keys are ${allowed.join(', ')}.`,
      );
    }
    if (typeof value !== 'string') {
      throw new CliError(
        'INVALID_CONFIG',
        `"${key}" in the config file ${configPath} is not a string`,
        `Write it as a JSON string, for example "${key}": "…".`,
      );
    }
  }
  return json as Record<FileKey, string>;
}

function check<T>(setting: Setting<string> | undefined, parse: (value: string, source: string) => T) {
  return setting === undefined ? undefined : { value: parse(setting.value, setting.source), source: setting.source };
}

function rpcUrl(value: string, source: string): string {
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {}
  if (!url || !['http:', 'https:'].includes(url.protocol)) {
    throw new CliError(
      'INVALID_CONFIG',
      `The RPC URL from ${source} is not an http(s) URL: ${value}`,
      'Give the JSON-RPC endpoint of a node, for example http://127.0.0.1:8545.',
    );
  }
  return value;
}

function hubUrl(value: string, source: string): string {
  try {
    return normalizeHubUrl(value);
  } catch {
    throw new CliError(
      'INVALID_CONFIG',
      `The hub URL from ${source} is not an http(s) URL without query: ${value}`,
      'Give the base URL the Registry lists for the hub (`chit hubs`), for example https://hub.example.',
    );
  }
}

function address(value: string, source: string): Address {
  if (!isAddress(value)) {
    throw new CliError(
      'INVALID_CONFIG',
      `The address from ${source} is not a valid address: ${value}`,
      'Give 0x and 40 hex digits; in mixed case it must be a valid EIP-55 checksum.',
    );
  }
  return getAddress(value);
}
