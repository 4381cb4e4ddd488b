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
    return setKeccakImplementation((data) => {
      const state = new State();
      state.initialize(1088, 512);
      state.absorb(data);
      state.absorbLastFewBits(0x01);
      return state.squeeze(32);
    });
  } catch {
    return false;
  }
}
