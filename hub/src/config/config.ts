import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { isAddress, isHex } from 'viem';
import { z } from 'zod';

const address = z.string().superRefine((value, context) => {
  if (isAddress(value)) return;
  context.addIssue({
    code: 'custom',
    message: isAddress(value, { strict: false })
      ? 'mixed-case letters that do not match its EIP-55 checksum: copy the address again from where it came from (a typo?), or write it all in lowercase to skip the check'
      : 'expected a 0x-prefixed 20-byte address',
  });
});
const privateKey = z
  .string()
  .refine((value) => isHex(value) && value.length === 66, 'expected a 0x-prefixed 32-byte private key');
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const uint256 = (what: string) =>
  z
    .string()
    .regex(/^\d{1,78}$/, `expected a non-negative integer (${what})`)
    .transform((value) => BigInt(value));
const url = (protocols: string[]) =>
  z.string().refine(
    (value) => {
      try {
        return protocols.includes(new URL(value).protocol);
      } catch {
        return false;
      }
    },
    `expected a ${protocols.join(' or ')} URL`,
  );

/**
 * CORS_ORIGINS: `*` (any origin), `none`, or a comma list of origins (`scheme://host[:port]`), which are
 * answered in the form browsers send them (`https://Wallet.example/` is `https://wallet.example`).
 */
const corsOrigins = z
  .string()
  .default('*')
  .transform((value, context): '*' | string[] => {
    const trimmed = value.trim();
    if (trimmed === '*') return '*';
    if (trimmed === 'none') return [];
    const origins: string[] = [];
    for (const entry of trimmed.split(',').map((part) => part.trim())) {
      const origin = originOf(entry);
      if (origin === undefined) {
        context.addIssue({
          code: 'custom',
          message: `expected *, none or a comma list of origins like https://wallet.example (scheme://host[:port], no path); "${entry}" is not one`,
        });
        return z.NEVER;
      }
      origins.push(origin);
    }
    return origins;
  });

/** The origin `entry` names (an http: or https: URL without path, query or credentials), else undefined. */
function originOf(entry: string): string | undefined {
  try {
    const url = new URL(entry);
    // Anything beyond the origin (a path, a query, credentials) shows in href.
    return ['http:', 'https:'].includes(url.protocol) && url.href === `${url.origin}/` ? url.origin : undefined;
  } catch {
    return undefined;
  }
}

/** Names proxy-addr takes for address ranges (loopback: 127.0.0.0/8 and ::1). */
const PROXY_RANGES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/**
 * TRUST_PROXY: which proxies may say who the client is (X-Forwarded-For): unset trusts none (the
 * client is the peer of the connection), a number trusts that many hops, else a comma list of
 * addresses, CIDR ranges or `loopback`, `linklocal`, `uniquelocal`.
 */
const trustProxy = z
  .string()
  .optional()
  .transform((value, context): false | number | string[] => {
    if (value === undefined) return false;
    const trimmed = value.trim();
    if (/^\d{1,2}$/.test(trimmed)) return Number(trimmed);
    const entries = trimmed.split(',').map((part) => part.trim());
    const bad = entries.find((entry) => !PROXY_RANGES.has(entry) && !isAddressOrRange(entry));
    if (bad === undefined) return entries;
    context.addIssue({
      code: 'custom',
      message: `expected a number of hops or a comma list of proxy addresses, CIDR ranges, loopback, linklocal or uniquelocal; "${bad}" is none`,
    });
    return z.NEVER;
  });

function isAddressOrRange(entry: string): boolean {
  const [address, bits, ...rest] = entry.split('/');
  const version = isIP(address ?? '');
  if (version === 0 || rest.length > 0) return false;
  if (bits === undefined) return true;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (version === 4 ? 32 : 128);
}

/** Every setting of the hub, from the environment (flags of `chit-hub start` set the same names). */
export const configSchema = z.object({
  DATABASE_URL: url(['postgres:', 'postgresql:']),
  REDIS_URL: url(['redis:', 'rediss:']).default('redis://127.0.0.1:6379'),
  RPC_URL: url(['http:', 'https:', 'ws:', 'wss:']),
  HUB_ADDRESS: address,
  OPERATOR_KEY: privateKey,
  CHAIN_ID: int(1, Number.MAX_SAFE_INTEGER).optional(),
  /**
   * What this process runs: `all` (the default), `api` (the HTTP API; settlement requests are only
   * enqueued) or `worker` (chain follower, settlement workers and schedules; serves only /health,
   * /ready and /metrics). Replicas of any mix share one Postgres and one Redis.
   */
  HUB_ROLE: z.enum(['all', 'api', 'worker']).default('all'),
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: int(0, 65_535).default(8080),
  CONFIRMATIONS: int(0, 1_000).default(2),
  FOLLOWER_POLL_MS: int(50, 3_600_000).default(1_000),
  FOLLOWER_START_BLOCK: int(0, Number.MAX_SAFE_INTEGER).default(0),
  /** /ready answers 503 when no sync of the follower reached the confirmed head for this long. */
  FOLLOWER_STALL_MS: int(1_000, 86_400_000).default(60_000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  DB_POOL_SIZE: int(1, 1_000).default(10),
  EXCHANGE_MAX_BATCH: int(1, 10_000).default(256),
  EXCHANGE_CONCURRENCY: int(1, 100).default(1),
  /** Consumers, providers and agreements (each) the exchange keeps in memory to decide on without locking; 0: none. */
  EXCHANGE_MEMORY_ROWS: int(0, 10_000_000).default(50_000),
  /** Worker threads for the exchange's crypto (0: in the main thread); default the other cores, 1 to 4. */
  CRYPTO_THREADS: int(0, 64).default(() => Math.min(4, Math.max(1, availableParallelism() - 1))),
  QUEUE_PREFIX: z.string().min(1).default('chit'),
  // The HTTP edge (hub/src/api/cors.ts, hub/src/api/rate-limit.ts).
  /** Origins of the web pages that may call the API from a browser. */
  CORS_ORIGINS: corsOrigins,
  /** Proxies whose X-Forwarded-For names the client (rate limits count per client address). */
  TRUST_PROXY: trustProxy,
  /** Requests one client address may make to the API per RATE_LIMIT_WINDOW_MS, counted in Redis by every replica; 0 turns limits off. */
  RATE_LIMIT_MAX: int(0, 1_000_000_000).default(6_000),
  RATE_LIMIT_WINDOW_MS: int(1_000, 86_400_000).default(60_000),
  /**
   * The hosts (`hub.example`, `hub.example:8443`) a Sign-In with Ethereum message may name as its
   * domain, comma separated; unset, the host each sign-in request was sent to (its Host header).
   */
  AUTH_DOMAINS: z
    .string()
    .optional()
    .transform((value) =>
      value
        ?.split(',')
        .map((host) => host.trim().toLowerCase())
        .filter(Boolean),
    )
    .refine(
      (hosts) =>
        !hosts || hosts.every((host) => /^[a-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9a-f:]+\](:[0-9]{1,5})?$/.test(host)),
      {
        message: 'expected a comma list of hosts (host or host:port), without scheme or path',
      },
    ),
  // Settlement pipeline and relayer (hub/src/settlement).
  /** Sends the relayer's transactions (settlements, relayed registrations); OPERATOR_KEY when unset. */
  RELAYER_KEY: privateKey.optional(),
  /** Most claims in one settlement transaction. */
  SETTLEMENT_BATCH_SIZE: int(1, 500).default(100),
  /** How long the first claim of a batch waits for others before the batch is sent. */
  SETTLEMENT_BATCH_WINDOW_MS: int(0, 3_600_000).default(5_000),
  /** How often due consumers (and providers over the threshold) are collected into jobs. */
  SETTLEMENT_SCAN_INTERVAL_MS: int(100, 86_400_000).default(60_000),
  /** How often each replica re-enqueues the open settlements of the books (after a Redis loss). */
  SETTLEMENT_RECONCILE_INTERVAL_MS: int(100, 86_400_000).default(30_000),
  /** Attempts of a job before it is failed, with exponential backoff from SETTLEMENT_BACKOFF_MS. */
  SETTLEMENT_ATTEMPTS: int(1, 100).default(8),
  SETTLEMENT_BACKOFF_MS: int(1, 3_600_000).default(2_000),
  /** The hub settles a provider itself once this much (token units) is unsettled; 0 turns it off. */
  PROVIDER_SETTLEMENT_THRESHOLD: uint256('token units').default(0n),
  /** The most the gas of a settlement the hub pays itself may cost, as a share of the amount (basis points). */
  SETTLEMENT_MAX_FEE_SHARE_BPS: int(0, 10_000).default(100),
  /** Relayer fee quotes: gas price x gas per promise x this margin (basis points; 12,000 = 1.2x). */
  RELAYER_FEE_MARGIN_BPS: int(10_000, 100_000).default(12_000),
  /** Token units one wei of the gas coin is worth, as a decimal (1 when both have 18 decimals and trade 1:1). */
  RELAYER_TOKENS_PER_WEI: z
    .string()
    .regex(/^\d+(\.\d{1,18})?$/, 'expected a non-negative decimal with at most 18 decimals')
    .default('1'),
  QUOTE_VALIDITY_SECONDS: int(1, 86_400).default(120),
  INSTANT_EXIT_VALIDITY_SECONDS: int(10, 86_400).default(600),
  /** A transaction not mined this long after its last broadcast is sent again with higher fees. */
  TX_RESUBMIT_AFTER_MS: int(100, 3_600_000).default(60_000),
  /** Each resubmission raises both fees by at least this much (nodes ask for +10 %). */
  TX_FEE_BUMP_PERCENT: int(10, 1_000).default(25),
  /** Fee cap per gas (wei) for resubmissions; unset means no cap. */
  TX_MAX_FEE_PER_GAS: uint256('wei per gas')
    .refine((value) => value > 0n, 'expected more than 0 wei per gas')
    .optional(),
  TX_POLL_INTERVAL_MS: int(50, 60_000).default(1_000),
  /** How long a queue worker may go silent before its jobs are given to another (BullMQ lock). */
  QUEUE_LOCK_MS: int(1_000, 600_000).default(30_000),
});

export type HubConfig = z.infer<typeof configSchema>;

/**
 * Settings that may come from a file instead, named by `<setting>_FILE` (a Docker or Kubernetes secret
 * mounted as a file). The file holds the value alone; whitespace around it (a final newline) is dropped.
 * Setting both is an error, so that which key a hub runs with is never in doubt.
 */
const FILE_SETTINGS = ['OPERATOR_KEY', 'RELAYER_KEY'] as const;

function isFileSetting(name: string): boolean {
  return (FILE_SETTINGS as readonly string[]).includes(name);
}

/** A bad or missing setting; the message names every offending variable. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * Parses and validates the configuration once, at start. A bad value stops start-up with a message
 * that names the variable and says what was expected.
 */
export function loadConfig(env?: Record<string, string | undefined>): HubConfig;
/** Parses only the settings `keys` names (a command that needs no more, like `chit-hub migrate`). */
export function loadConfig<K extends keyof HubConfig>(
  env: Record<string, string | undefined>,
  keys: K[],
): Pick<HubConfig, K>;
export function loadConfig(
  env: Record<string, string | undefined> = process.env,
  keys?: (keyof HubConfig)[],
): Partial<HubConfig> {
  const schema = keys
    ? configSchema.pick(Object.fromEntries(keys.map((key) => [key, true])) as Record<keyof HubConfig, true>)
    : configSchema;
  const names = Object.keys(schema.shape);
  const input: Record<string, string | undefined> = Object.fromEntries(
    names.map((key) => [key, env[key] || undefined]),
  );
  // [setting, line]: a setting read from a file is named by its _FILE variable, never by its value.
  const problems: [string, string][] = [];
  const files = new Map<string, string>();
  for (const name of FILE_SETTINGS) {
    const file = env[`${name}_FILE`];
    if (!file || !names.includes(name)) continue;
    if (input[name] !== undefined) {
      problems.push([name, `${name}_FILE: set either ${name} or ${name}_FILE, not both`]);
      continue;
    }
    try {
      input[name] = readFileSync(file, 'utf8').trim();
      files.set(name, file);
    } catch (error) {
      // "ENOENT: no such file or directory, open '/run/secrets/operator_key'": the code and its words.
      const reason = (error as Error).message.split(',')[0];
      problems.push([name, `${name}_FILE: cannot read ${file} (${reason})`]);
    }
  }
  const result = schema.safeParse(input);
  if (result.success && problems.length === 0) return result.data;
  const reported = new Set(problems.map(([name]) => name));
  for (const issue of result.success ? [] : result.error.issues) {
    const name = String(issue.path[0]);
    if (reported.has(name)) continue;
    const file = files.get(name);
    const message =
      issue.code === 'invalid_type' && input[name] === undefined
        ? `is required${isFileSetting(name) ? ` (or ${name}_FILE, a file that holds it)` : ''}`
        : issue.message;
    problems.push([name, file ? `${name}_FILE: ${file}: ${message}` : `${name}: ${message}`]);
  }
  problems.sort(([a], [b]) => names.indexOf(a) - names.indexOf(b));
  throw new ConfigError(`invalid configuration:\n${problems.map(([, line]) => `  ${line}`).join('\n')}`);
}
