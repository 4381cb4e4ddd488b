import { isAddress, isHex } from 'viem';
import { z } from 'zod';

const address = z.string().refine((value) => isAddress(value), 'expected a 0x-prefixed 20-byte address');
const privateKey = z
  .string()
  .refine((value) => isHex(value) && value.length === 66, 'expected a 0x-prefixed 32-byte private key');
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
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

/** Every setting of the hub, from the environment (flags of `chit-hub start` set the same names). */
export const configSchema = z.object({
  DATABASE_URL: url(['postgres:', 'postgresql:']),
  REDIS_URL: url(['redis:', 'rediss:']).default('redis://127.0.0.1:6379'),
  RPC_URL: url(['http:', 'https:', 'ws:', 'wss:']),
  HUB_ADDRESS: address,
  OPERATOR_KEY: privateKey,
  CHAIN_ID: int(1, Number.MAX_SAFE_INTEGER).optional(),
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: int(0, 65_535).default(8080),
  CONFIRMATIONS: int(0, 1_000).default(2),
  FOLLOWER_POLL_MS: int(50, 3_600_000).default(1_000),
  FOLLOWER_START_BLOCK: int(0, Number.MAX_SAFE_INTEGER).default(0),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  DB_POOL_SIZE: int(1, 1_000).default(10),
  EXCHANGE_MAX_BATCH: int(1, 10_000).default(256),
  EXCHANGE_CONCURRENCY: int(1, 100).default(4),
  QUEUE_PREFIX: z.string().min(1).default('chit'),
});

export type HubConfig = z.infer<typeof configSchema>;

/** A bad or missing setting; the message names every offending variable. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * Parses and validates the configuration once, at start. A bad value stops start-up with a message
 * that names the variable and says what was expected.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): HubConfig {
  const input = Object.fromEntries(Object.keys(configSchema.shape).map((key) => [key, env[key] || undefined]));
  const result = configSchema.safeParse(input);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const name = String(issue.path[0]);
    const message = issue.code === 'invalid_type' && input[name] === undefined ? 'is required' : issue.message;
    return `  ${name}: ${message}`;
  });
  throw new ConfigError(`invalid configuration:\n${problems.join('\n')}`);
}
