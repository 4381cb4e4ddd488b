import { readFile } from 'node:fs/promises';
import {
  decodeMessage,
  getHubInfo,
  hubPromiseDigestBytes,
  jsVerifier,
  MalformedMessageError,
  recoverConsumerPromiseSigner,
  type SignedConsumerPromise,
  type SignedHubPromise,
} from '@chit/sdk';
import { Command } from 'commander';
import { type Address, getAddress } from 'viem';
import { type CliContext, handler } from '../context.js';
import { CliError } from '../errors.js';
import { formatAmount, parseAddress } from '../output.js';

/** What `chit promise verify` found. */
interface Verdict {
  valid: boolean;
  type: 'consumerPromise' | 'hubPromise' | null;
  /** Why it is invalid. */
  reason?: string;
  /** The signer it must have: the consumer, or the hub's operator. */
  expected?: Address;
  /** Who signed it, if the signature is well-formed. */
  signer?: Address | null;
  promise?: Record<string, unknown>;
}

/**
 * `chit promise verify <file|->`: decodes a consumer or hub promise strictly and checks its signature;
 * exits 0 when valid, 1 otherwise.
 *
 * @example
 * program.addCommand(promiseCommand());
 */
export function promiseCommand(): Command {
  const promise = new Command('promise').description('Check promises');
  promise
    .command('verify')
    .description('Decode a consumer or hub promise (JSON) strictly and verify its signature; exit 0 if valid, 1 if not')
    .argument('<file>', 'the promise as JSON, or - for stdin')
    .option('--operator <address>', "a hub promise's expected signer (default: the hub's operator, read on-chain)")
    .addHelpText(
      'after',
      '\nA consumer promise must be signed by its consumer. A hub promise must be signed by the operator\n' +
        'of its hub: give --operator, or an RPC URL to read it from the hub contract.',
    )
    .action(handler(runVerify));
  return promise;
}

async function runVerify(ctx: CliContext, file: string, options: { operator?: string }): Promise<void> {
  const operator = options.operator === undefined ? undefined : parseAddress(options.operator, '--operator');
  const text = await readInput(file);
  const verdict = await verify(ctx, text, operator);
  const amount = (value: unknown) => `${formatAmount(BigInt(value as string), 18)} tokens`;
  const lines: string[] = [];
  if (verdict.valid && verdict.type === 'consumerPromise') {
    const p = verdict.promise!;
    lines.push(
      `VALID: a consumer promise signed by its consumer ${verdict.signer}.`,
      `It promises ${amount(p.total)} in total to the hub ${p.hub} on chain ${p.chainId}, paying the agreement ${(p.agreement as { id: string }).id} of ${(p.agreement as { provider: string }).provider} up to ${amount((p.agreement as { total: string }).total)}.`,
    );
  } else if (verdict.valid) {
    const p = verdict.promise!;
    lines.push(
      `VALID: a hub promise signed by the hub's operator ${verdict.signer}.`,
      `The hub ${p.hub} on chain ${p.chainId} owes ${p.provider} ${amount(p.total)} in total (before its fee).`,
    );
  } else {
    lines.push(`INVALID: ${verdict.reason}`);
  }
  ctx.out.result(verdict, lines);
  if (!verdict.valid) process.exitCode = 1;
}

async function readInput(file: string): Promise<string> {
  try {
    if (file !== '-') return await readFile(file, 'utf8');
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  } catch (error) {
    throw new CliError('FILE_UNREADABLE', `${file} cannot be read`, 'Check the path, or pipe the JSON in with -.', {
      details: (error as Error).message,
    });
  }
}

async function verify(ctx: CliContext, text: string, operator: Address | undefined): Promise<Verdict> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return { valid: false, type: null, reason: `not JSON: ${(error as Error).message}` };
  }
  const type =
    json !== null && typeof json === 'object' && 'consumer' in json
      ? 'consumerPromise'
      : json !== null && typeof json === 'object' && 'provider' in json
        ? 'hubPromise'
        : null;
  if (!type) {
    return {
      valid: false,
      type: null,
      reason: 'neither a consumer promise (it names a "consumer") nor a hub promise (it names a "provider")',
    };
  }
  let promise: SignedConsumerPromise | SignedHubPromise;
  try {
    promise = decodeMessage(type, json);
  } catch (error) {
    if (error instanceof MalformedMessageError) return { valid: false, type, reason: error.shortMessage };
    throw error;
  }
  const wire = json as Record<string, unknown>;
  if (type === 'consumerPromise') {
    const consumerPromise = promise as SignedConsumerPromise;
    const signer = recoverConsumerPromiseSigner(consumerPromise);
    return verdictOf(type, consumerPromise.consumer, signer ? getAddress(signer) : null, 'its consumer', wire);
  }
  const hubPromise = promise as SignedHubPromise;
  const expected = operator ?? (await operatorOf(ctx, hubPromise));
  const recovered = jsVerifier.recover(hubPromiseDigestBytes(hubPromise), hubPromise.signature);
  return verdictOf(type, expected, recovered ? getAddress(recovered) : null, "the hub's operator", wire);
}

function verdictOf(
  type: 'consumerPromise' | 'hubPromise',
  expected: Address,
  signer: Address | null,
  role: string,
  promise: Record<string, unknown>,
): Verdict {
  if (signer && signer === getAddress(expected)) return { valid: true, type, expected, signer, promise };
  const reason = signer
    ? `the signature is from ${signer}, not from ${role} ${expected}: the promise was changed after signing, or signed by another key, for another hub or chain`
    : 'the signature is malformed or malleable (high s)';
  return { valid: false, type, reason, expected, signer, promise };
}

async function operatorOf(ctx: CliContext, promise: SignedHubPromise): Promise<Address> {
  if (!ctx.config.rpcUrl) {
    throw new CliError(
      'OPERATOR_UNKNOWN',
      "A hub promise is checked against its hub's operator, and no RPC URL is set to read it",
      `Pass --operator <address>, or set an RPC URL of chain ${promise.chainId} (--rpc-url or CHIT_RPC_URL).`,
    );
  }
  const client = await ctx.publicClient();
  if (client.chain.id !== promise.chainId) {
    throw new CliError(
      'CHAIN_MISMATCH',
      `The promise is for chain ${promise.chainId}, but the RPC node is on chain ${client.chain.id}`,
      `Use an RPC URL of chain ${promise.chainId}, or pass --operator <address>.`,
    );
  }
  return (await getHubInfo(client, { hub: promise.hub })).operator;
}
