import { createRequire } from 'node:module';
import { setKeccakImplementation } from '../protocol/keccak.js';

interface KeccakState {
  initialize(rate: number, capacity: number): void;
  absorb(data: Uint8Array): void;
  absorbLastFewBits(bits: number): void;
  squeeze(length: number): Uint8Array;
}

/**
 * Switches the SDK's keccak256 (digests, hashlocks, addresses) to the native implementation of the
 * optional `keccak` package, about 10x the JavaScript one. Returns false, and changes nothing, when
 * the binding cannot load.
 *
 * @example
 * enableNativeHashing();
 * const verifier = nativeVerifier();
 */
export function enableNativeHashing(): boolean {
  try {
    const require = createRequire(import.meta.url);
    const build = require('node-gyp-build') as (dir: string) => new () => KeccakState;
    const path = require('node:path') as typeof import('node:path');
    const State = build(path.dirname(require.resolve('keccak/package.json')));
    // One sponge, initialised again for every hash: creating a native object per hash costs more
    // than hashing a few words. Safe because each call runs to completion synchronously.
    const sponge = new State();
    return setKeccakImplementation((data) => {
      sponge.initialize(1088, 512);
      sponge.absorb(data);
      sponge.absorbLastFewBits(0x01);
      return sponge.squeeze(32);
    });
  } catch {
    return false;
  }
}
