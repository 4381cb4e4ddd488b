import { decodeContractError } from '../../errors/contract.js';

/** Runs a viem call and rethrows its failure as the SDK's typed error ({@link decodeContractError}). */
export async function guard<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    throw decodeContractError(error);
  }
}
