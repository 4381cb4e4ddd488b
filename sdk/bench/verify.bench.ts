/**
 * Verifications per second of consumer promises: native libsecp256k1 against pure JavaScript.
 *
 *   npm run bench:sdk                     # prints a table
 *   npm run bench -w sdk -- --json FILE   # also writes the figures as JSON
 *
 * `runVerifyBench` returns the figures; scripts/bench.ts runs this file for BENCHMARKS.md.
 */
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { hexToBytes } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import {
  consumerPromiseDigestBytes,
  jsVerifier,
  newHashlock,
  type SignedConsumerPromise,
  signConsumerPromise,
  type Verifier,
  verifyConsumerPromise,
} from '../src/index.js';
import { enableNativeHashing, nativeVerifier } from '../src/node/index.js';

const SAMPLES = 512;

async function promises(): Promise<SignedConsumerPromise[]> {
  const consumer = privateKeyToAccount(`0x${'42'.repeat(32)}`);
  const out: SignedConsumerPromise[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const { hashlock } = newHashlock();
    out.push(
      await signConsumerPromise(consumer, {
        hub: '0xd8FC5e1bC1649fE55004b606a92a2501D603fC4d',
        chainId: 31337,
        consumer: consumer.address,
        total: BigInt(i + 1) * 10n ** 15n,
        hashlock,
        agreement: { provider: consumer.address, id: hashlock, total: BigInt(i + 1) * 10n ** 15n },
      }),
    );
  }
  return out;
}

function perSecond(seconds: number, run: (i: number) => void): number {
  const end = performance.now() + seconds * 1000;
  let count = 0;
  const start = performance.now();
  while (performance.now() < end) {
    for (let i = 0; i < 64; i++) run(count++);
  }
  return Math.round(count / ((performance.now() - start) / 1000));
}

/** Operations per second of one verifier. */
export interface VerifierFigures {
  'recover/s': number;
  'verify promise/s': number;
}

export interface VerifyBenchFigures {
  node: string;
  /** Seconds each figure was measured for. */
  seconds: number;
  js: VerifierFigures;
  native: VerifierFigures;
  /** native / js. */
  ratio: { recover: number; verifyPromise: number };
}

/**
 * Measures the pure JavaScript verifier, then the native one, on one core. Turns native keccak on
 * for the rest of the process (the JavaScript figures are taken before, with JavaScript hashing).
 */
export async function runVerifyBench(options: { seconds?: number } = {}): Promise<VerifyBenchFigures> {
  const seconds = options.seconds ?? 2;
  const samples = await promises();
  const digests = samples.map((p) => consumerPromiseDigestBytes(p));
  const signatures = samples.map((p) => hexToBytes(p.signature));
  const native = nativeVerifier();
  if (native.kind !== 'native') throw new Error('the native secp256k1 binding did not load');
  const rows: Record<string, VerifierFigures> = {};
  // Each verifier with its own hashing: native keccak for native, JavaScript for the fallback.
  for (const verifier of [jsVerifier, native] as Verifier[]) {
    if (verifier.kind === 'native' && !enableNativeHashing()) throw new Error('the native keccak did not load');
    // Warm up the JIT before measuring.
    perSecond(0.3, (i) => verifier.recover(digests[i % SAMPLES]!, signatures[i % SAMPLES]!));
    rows[verifier.kind] = {
      'recover/s': perSecond(seconds, (i) => verifier.recover(digests[i % SAMPLES]!, signatures[i % SAMPLES]!)),
      'verify promise/s': perSecond(seconds, (i) => {
        if (!verifyConsumerPromise(samples[i % SAMPLES]!, verifier)) throw new Error('verification failed');
      }),
    };
  }
  const js = rows.js!;
  const nat = rows.native!;
  return {
    node: process.version,
    seconds,
    js,
    native: nat,
    ratio: {
      recover: nat['recover/s'] / js['recover/s'],
      verifyPromise: nat['verify promise/s'] / js['verify promise/s'],
    },
  };
}

async function main(): Promise<void> {
  const figures = await runVerifyBench();
  console.table({ js: figures.js, native: figures.native });
  console.log(`native/js (verify promise): ${figures.ratio.verifyPromise.toFixed(1)}x`);
  console.log(`native/js (recover): ${figures.ratio.recover.toFixed(1)}x (one core, node ${figures.node})`);
  const json = process.argv.indexOf('--json');
  if (json >= 0) writeFileSync(process.argv[json + 1]!, `${JSON.stringify(figures, null, 2)}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error) => {
    console.error(error);
    process.exitCode = 1;
  });
}
