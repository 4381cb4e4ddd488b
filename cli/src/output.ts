import { type Address, formatUnits, getAddress, isAddress, parseUnits } from 'viem';
import { CliError, type ErrorReport } from './errors.js';

/** The hub's token as amounts are parsed and printed. */
export interface TokenInfo {
  address: Address;
  decimals: number;
  symbol: string;
}

/**
 * Parses an amount of tokens written with decimals (`12.5`) into base units, exactly: more decimals
 * than the token has, a sign, an exponent or a zero are refused rather than rounded.
 *
 * @throws {CliError} `INVALID_AMOUNT`.
 * @example
 * parseAmount('12.5', 18); // 12500000000000000000n
 */
export function parseAmount(text: string, decimals: number, options: { allowZero?: boolean } = {}): bigint {
  const trimmed = text.trim();
  const match = /^(\d+)(?:\.(\d+))?$/.exec(trimmed) ?? /^()\.(\d+)$/.exec(trimmed);
  if (!match) {
    throw new CliError(
      'INVALID_AMOUNT',
      `"${text}" is not an amount`,
      'Write the amount in tokens with a dot for decimals, for example 12.5.',
    );
  }
  if ((match[2] ?? '').length > decimals) {
    throw new CliError(
      'INVALID_AMOUNT',
      `"${text}" has more than the token's ${decimals} decimals`,
      `Round it to at most ${decimals} decimals.`,
    );
  }
  const amount = parseUnits(trimmed.startsWith('.') ? `0${trimmed}` : trimmed, decimals);
  if (amount === 0n && !options.allowZero) {
    throw new CliError('INVALID_AMOUNT', 'The amount is zero', 'Give an amount above zero.');
  }
  return amount;
}

/**
 * Parses an address argument; mixed case must be a valid EIP-55 checksum.
 *
 * @throws {CliError} `INVALID_ADDRESS` naming `what`.
 * @example
 * parseAddress('0xaf295d3c842bc1145e818d7fef2c929726625620', '--to');
 */
export function parseAddress(value: string, what: string): Address {
  if (!isAddress(value)) {
    throw new CliError(
      'INVALID_ADDRESS',
      `${what} is not a valid address: ${value}`,
      'Give 0x and 40 hex digits; in mixed case it must be a valid EIP-55 checksum.',
    );
  }
  return getAddress(value);
}

/**
 * Prints base units as tokens with decimals, without rounding: `12.5`.
 *
 * @example
 * formatAmount(12500000000000000000n, 18); // '12.5'
 */
export function formatAmount(amount: bigint, decimals: number): string {
  return formatUnits(amount, decimals);
}

/** One line of a human-readable block: a label and its value; `undefined` values are skipped. */
export type Row = [label: string, value: string | undefined];

/**
 * Where a command writes: its result on stdout (readable text, or one JSON document with `--json`),
 * progress and warnings on stderr, so that `--json` output stays parseable.
 *
 * @example
 * const out = new Output({ json: false });
 * out.progress('waiting for confirmation (1/1)…');
 * out.result({ deposited: '12.5' }, [['Deposited', '12.5 CHIT']]);
 */
export class Output {
  readonly json: boolean;
  readonly #stdout: NodeJS.WritableStream;
  readonly #stderr: NodeJS.WritableStream;

  constructor(options: { json: boolean; stdout?: NodeJS.WritableStream; stderr?: NodeJS.WritableStream }) {
    this.json = options.json;
    this.#stdout = options.stdout ?? process.stdout;
    this.#stderr = options.stderr ?? process.stderr;
  }

  /**
   * Prints a command's result: `data` as JSON with `--json`, else `human` (rows are aligned).
   *
   * @example
   * out.result({ address }, [['Address', address]]);
   */
  result(data: unknown, human: readonly (Row | string)[]): void {
    if (this.json) {
      this.#stdout.write(`${toJson(data)}\n`);
      return;
    }
    this.#stdout.write(renderLines(human));
  }

  /**
   * Information shown before a command acts (the figures a confirmation is about): on stdout, or on
   * stderr with `--json`, where stdout holds only the result.
   *
   * @example
   * out.notice([['Hub fee', '0.07 CHIT']]);
   */
  notice(human: readonly (Row | string)[]): void {
    (this.json ? this.#stderr : this.#stdout).write(renderLines(human));
  }

  /**
   * A line of progress on stderr, such as `waiting for confirmation (1/2)…`.
   *
   * @example
   * out.progress('asking the hub for its co-signature…');
   */
  progress(message: string): void {
    this.#stderr.write(`${message}\n`);
  }

  /**
   * A warning on stderr: something the user should know that does not stop the command.
   *
   * @example
   * out.warn('the hub did not answer; showing on-chain figures only');
   */
  warn(message: string): void {
    this.#stderr.write(`warning: ${message}\n`);
  }

  /**
   * Reports a failure on stderr: in words, or as `{ "error": { code, message, details, hint } }` with `--json`.
   *
   * @example
   * out.error(toErrorReport(error));
   */
  error(report: ErrorReport): void {
    if (this.json) {
      this.#stderr.write(`${toJson({ error: report })}\n`);
      return;
    }
    const lines = [`error: ${report.message}`];
    if (report.details) lines.push(...report.details.split('\n').map((line) => `  ${line}`));
    lines.push(`  → ${report.hint}`);
    this.#stderr.write(`${lines.join('\n')}\n`);
  }
}

function renderLines(lines: readonly (Row | string)[]): string {
  const rows = lines.filter((line): line is Row => typeof line !== 'string' && line[1] !== undefined);
  const width = Math.max(0, ...rows.map(([label]) => label.length));
  const text = lines
    .filter((line) => typeof line === 'string' || line[1] !== undefined)
    .map((line) => (typeof line === 'string' ? line : `${`${line[0]}:`.padEnd(width + 2)}${line[1]}`));
  return text.length > 0 ? `${text.join('\n')}\n` : '';
}

/**
 * Aligns rows of cells into columns, for listings such as `chit hubs`.
 *
 * @example
 * table([['HUB', 'FEE'], ['0x…', '1.00%']]);
 */
export function table(rows: readonly (readonly string[])[]): string[] {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length))) ?? [];
  return rows.map((row) =>
    row
      .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd(),
  );
}

function toJson(value: unknown): string {
  return JSON.stringify(value, (_key, inner) => (typeof inner === 'bigint' ? inner.toString() : inner), 2);
}
