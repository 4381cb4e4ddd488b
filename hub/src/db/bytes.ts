/** Conversions between the hub's lower-case 0x-hex strings and Postgres bytea. */
export type Hex = `0x${string}`;

export const toBytea = (hex: string): Buffer => Buffer.from(hex.slice(2), 'hex');

export const fromBytea = (bytes: Buffer): Hex => `0x${bytes.toString('hex')}`;

export const fromByteaOrNull = (bytes: Buffer | null): Hex | null => (bytes ? fromBytea(bytes) : null);

const HEX = /^0x[0-9a-fA-F]*$/;

/**
 * The text of a Postgres `bytea[]` holding `values` (null: NULL), for a `$n::bytea[]` parameter: the same
 * array as one of `toBytea` buffers, without a buffer in between. Throws on a value that is not hex, so
 * no value can add elements to the array.
 */
export function byteaArray(values: ReadonlyArray<string | null>): string {
  let text = '{';
  for (let i = 0; i < values.length; i++) {
    const hex = values[i];
    if (i > 0) text += ',';
    if (hex === null || hex === undefined) {
      text += 'NULL';
      continue;
    }
    if (!HEX.test(hex)) throw new TypeError(`not 0x-hex: ${hex.slice(0, 20)}`);
    text += `\\\\x${hex.slice(2)}`;
  }
  return `${text}}`;
}

/** The text of a Postgres `numeric[]` holding `values`, for a `$n::numeric[]` parameter. */
export const numericArray = (values: ReadonlyArray<bigint>): string => `{${values.join(',')}}`;
