import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { bytesToHex, getAddress } from 'viem';
import { decodeMessage, wireSchemas } from '../src/index.js';
import { fastDecoders } from '../src/protocol/codec.fast.js';

// The decoders of codec.fast.ts against the zod schemas they stand in for: on any input, a decoder
// either returns exactly what its schema returns, or nothing (and the schema decides). Valid messages
// must take the fast way, or it would be dead code that looks fast.

type Name = keyof typeof fastDecoders;
const NAMES = Object.keys(fastDecoders) as Name[];

const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n }).map((b) => bytesToHex(b));
/** Hex of n bytes in any case mix: every case is valid for bytes. */
const anyCase = (n: number) =>
  fc
    .tuple(bytes(n), fc.array(fc.boolean(), { minLength: 2 * n, maxLength: 2 * n }))
    .map(([hex, upper]) => `0x${[...hex.slice(2)].map((c, i) => (upper[i] ? c.toUpperCase() : c)).join('')}`);
/** An address as a wallet writes it: lower case or EIP-55. */
const validAddress = fc.tuple(bytes(20), fc.boolean()).map(([hex, checksum]) => (checksum ? getAddress(hex) : hex));
/** An address, often with a broken checksum (upper case, random case). */
const anyAddress = fc.oneof(
  validAddress,
  anyCase(20),
  bytes(20).map((hex) => `0x${hex.slice(2).toUpperCase()}`),
);
const validUint = fc.bigInt({ min: 0n, max: (1n << 256n) - 1n }).map(String);
const anyUint = fc.oneof(
  validUint,
  fc.constantFrom('', '-1', '01', '1.5', '0x10', ' 1', '1e3', String(1n << 256n), `${'9'.repeat(78)}`),
  fc.bigInt({ min: 0n, max: 10n ** 20n }),
  fc.integer(),
);
const validSignature = fc.tuple(anyCase(64), fc.constantFrom('1b', '1c', '1B', '1C')).map(([rs, v]) => `${rs}${v}`);
const anySignature = fc.oneof(
  validSignature,
  fc.tuple(bytes(64), fc.constantFrom('00', '01', '1d', '1a', '')).map(([rs, v]) => `${rs}${v}`),
  bytes(66),
);
const validChainId = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });
const anyChainId = fc.oneof(
  validChainId,
  fc.constantFrom(0, -1, 1.5, 2 ** 53, Number.NaN, Number.POSITIVE_INFINITY, '1', null),
);

function messages(valid: boolean) {
  const address = valid ? validAddress : anyAddress;
  const uint = valid ? validUint : anyUint;
  const b32 = valid ? anyCase(32) : fc.oneof(anyCase(32), anyCase(31), bytes(33), fc.constant('0x'));
  const signature = valid ? validSignature : anySignature;
  const chainId = valid ? validChainId : anyChainId;
  const agreement = fc.record({ provider: address, id: b32, total: uint });
  const consumerPromise = fc.record({
    hub: address,
    chainId,
    consumer: address,
    total: uint,
    hashlock: b32,
    agreement,
    signature,
  });
  const hubPromise = fc.record({ hub: address, chainId, provider: address, total: uint, hashlock: b32, signature });
  const sealed = valid ? anyCase(93) : fc.oneof(anyCase(93), bytes(92));
  const exchangeRequest = fc.record(
    { promise: consumerPromise, previousPreimage: b32, encryptedPreimage: sealed },
    { requiredKeys: ['promise', 'encryptedPreimage'] },
  );
  return { consumerPromise, hubPromise, exchangeRequest } satisfies Record<Name, fc.Arbitrary<unknown>>;
}

/** A value of any field, at the edges of what each field accepts (mostly just outside), or any JSON value. */
const tricky = fc.oneof(
  fc.constantFrom('-1', '01', String(1n << 256n), '0x10', '', 0, -1, 1.5, 2 ** 53, Number.NaN, '1', null, true),
  anyUint,
  anySignature,
  anyAddress,
  anyChainId,
  anyCase(31),
  bytes(33),
  bytes(92),
  anyCase(32),
  anyCase(93),
  fc.jsonValue(),
);

/** Every key path of a message's fields (nested objects included). */
function paths(json: unknown, prefix: string[] = []): string[][] {
  if (!json || typeof json !== 'object' || Array.isArray(json)) return [];
  return Object.entries(json).flatMap(([key, inner]) => [[...prefix, key], ...paths(inner, [...prefix, key])]);
}

/** A valid message changed at one place, at any depth: a field replaced, dropped, renamed, or one added. */
function mutated(message: fc.Arbitrary<unknown>) {
  return fc
    .tuple(message, fc.nat(), fc.constantFrom('replace', 'replace', 'replace', 'drop', 'rename', 'add'), tricky)
    .map(([json, at, how, value]) => {
      const copy = structuredClone(json) as Record<string, unknown>;
      const all = paths(copy);
      const path = all[at % all.length]!;
      const parent = path.slice(0, -1).reduce((o, key) => o[key] as Record<string, unknown>, copy);
      const key = path.at(-1)!;
      if (how === 'replace') parent[key] = value;
      else if (how === 'drop') delete parent[key];
      else if (how === 'rename') {
        parent[`${key}x`] = parent[key];
        delete parent[key];
      } else parent[`${key}x`] = value;
      return copy;
    });
}

/** The decoder returns the schema's output, or nothing. */
function agrees(name: Name, json: unknown): 'fast' | 'schema' {
  const fast = fastDecoders[name](json);
  const schema = wireSchemas[name].safeParse(json);
  if (fast === undefined) return 'schema';
  assert.ok(schema.success, `the fast ${name} decoder accepted what the schema refuses: ${JSON.stringify(json)}`);
  assert.deepStrictEqual(fast, schema.data);
  return 'fast';
}

describe('the fast decoders of the hot messages', () => {
  for (const name of NAMES) {
    it(`${name}: every valid message takes the fast way, with the schema's output`, () => {
      fc.assert(
        fc.property(messages(true)[name], (json) => assert.equal(agrees(name, json), 'fast')),
        {
          numRuns: 300,
        },
      );
    });

    it(`${name}: on any input, returns what the schema returns or leaves it to the schema`, () => {
      let fast = 0;
      const inputs = fc.oneof(
        messages(false)[name],
        mutated(messages(true)[name]),
        fc.jsonValue(),
        messages(true)[name],
      );
      fc.assert(
        fc.property(inputs, (json) => {
          if (agrees(name, json) === 'fast') fast++;
        }),
        { numRuns: 5000 },
      );
      // Valid inputs are among them: the comparison above ran on outputs too, not only on refusals.
      assert.ok(fast > 0, 'no input took the fast way');
    });
  }

  it('every field at the edges of what it accepts: the same answer as the schema', () => {
    const checksummed = getAddress(`0x${'ab12'.repeat(10)}`);
    // One letter of the checksummed form in the other case: a bad checksum.
    const letter = checksummed.slice(2).search(/[a-fA-F]/) + 2;
    const flipped = checksummed[letter]!;
    const badChecksum = `${checksummed.slice(0, letter)}${flipped === flipped.toLowerCase() ? flipped.toUpperCase() : flipped.toLowerCase()}${checksummed.slice(letter + 1)}`;
    const hex = (n: number, digit = 'a') => `0x${digit.repeat(2 * n)}`;
    const edges: unknown[] = [
      ...[checksummed, checksummed.toLowerCase(), badChecksum, `0x${checksummed.slice(2).toUpperCase()}`],
      ...[hex(20).slice(0, -1), `${hex(20)}a`, hex(20).slice(2), hex(20, 'g')],
      ...[hex(32), hex(32, 'A'), hex(31), hex(33), `${hex(32).slice(0, -1)}g`],
      ...['1b', '1c', '1B', '1C', '1d', '1D', '00', '01', '1a', '1'].map((v) => `${hex(64)}${v}`),
      ...[hex(65), hex(66), hex(93), hex(93, 'F'), hex(92), hex(94)],
      ...['0', '1', '01', '-1', '', ' 1', '1 ', '1e3', '0x10', '+1', '1.0'],
      ...[String((1n << 256n) - 1n), String(1n << 256n), '9'.repeat(78), '9'.repeat(79)],
      ...[1, 0, -1, 1.5, 2 ** 53 - 1, 2 ** 53, Number.NaN, Number.POSITIVE_INFINITY, '1', null, true, [], {}],
    ];
    const bases = fc.sample(fc.tuple(...NAMES.map((name) => messages(true)[name])), 10);
    let fast = 0;
    let compared = 0;
    for (const tuple of bases) {
      NAMES.forEach((name, i) => {
        const base = tuple[i];
        for (const path of paths(base)) {
          for (const value of edges) {
            const copy = structuredClone(base) as Record<string, unknown>;
            const parent = path.slice(0, -1).reduce((o, key) => o[key] as Record<string, unknown>, copy);
            parent[path.at(-1)!] = value;
            if (agrees(name, copy) === 'fast') fast++;
            compared++;
          }
        }
      });
    }
    assert.ok(fast > 0 && fast < compared, `${fast} of ${compared} took the fast way`);
  });

  it('decodeMessage names the field at fault where the fast way refuses', () => {
    const json = {
      hub: `0x${'ab'.repeat(20)}`,
      chainId: 1,
      provider: `0x${'cd'.repeat(20)}`,
      total: '01',
      hashlock: `0x${'00'.repeat(32)}`,
      signature: `0x${'11'.repeat(64)}1b`,
    };
    assert.throws(() => decodeMessage('hubPromise', json), { code: 'MALFORMED', path: 'total' });
    assert.equal(decodeMessage('hubPromise', { ...json, total: '1' }).total, 1n);
  });
});
