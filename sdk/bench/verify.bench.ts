/**
 * Verifications per second of consumer promises: native libsecp256k1 against pure JavaScript.
 *
 *   npm run bench:sdk
 */
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

async function main(): Promise<void> {
  const samples = await promises();
  const digests = samples.map((p) => consumerPromiseDigestBytes(p));
  const signatures = samples.map((p) => hexToBytes(p.signature));
  const native = nativeVerifier();
  if (native.kind !== 'native') throw new Error('the native secp256k1 binding did not load');
  const rows: Record<string, Record<string, number>> = {};
  // Each verifier with its own hashing: native keccak for native, JavaScript for the fallback.
  for (const verifier of [jsVerifier, native] as Verifier[]) {
    if (verifier.kind === 'native' && !enableNativeHashing()) throw new Error('the native keccak did not load');
    // Warm up the JIT before measuring.
    perSecond(0.3, (i) => verifier.recover(digests[i % SAMPLES]!, signatures[i % SAMPLES]!));
    rows[verifier.kind] = {
      'recover/s': perSecond(2, (i) => verifier.recover(digests[i % SAMPLES]!, signatures[i % SAMPLES]!)),
      'verify promise/s': perSecond(2, (i) => {
        if (!verifyConsumerPromise(samples[i % SAMPLES]!, verifier)) throw new Error('verification failed');
      }),
    };
  }
  console.table(rows);
  const ratio = rows.native!['verify promise/s']! / rows.js!['verify promise/s']!;
  console.log(`native/js (verify promise): ${ratio.toFixed(1)}x`);
  console.log(
    `native/js (recover): ${(rows.native!['recover/s']! / rows.js!['recover/s']!).toFixed(1)}x (one core, node ${process.version})`,
  );
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
