/** Conversions between the hub's lower-case 0x-hex strings and Postgres bytea. */
export type Hex = `0x${string}`;

export const toBytea = (hex: string): Buffer => Buffer.from(hex.slice(2), 'hex');

export const fromBytea = (bytes: Buffer): Hex => `0x${bytes.toString('hex')}`;

export const fromByteaOrNull = (bytes: Buffer | null): Hex | null => (bytes ? fromBytea(bytes) : null);
