import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeErrorResult } from 'viem';
import { ContractCallError, ContractRevertError, decodeContractError, hubAbi } from '../src/index.js';

// A CommonJS caller of this ESM SDK (the hub) hands it clients built with the other build of viem,
// whose actions throw that build's error classes: the SDK must decode them all the same, by name.
class ForeignViemError extends Error {
  readonly shortMessage: string;
  constructor(
    override readonly name: string,
    fields: Record<string, unknown> = {},
    override readonly cause?: ForeignViemError,
  ) {
    super(name);
    this.shortMessage = `${name}: a viem error of another build`;
    Object.assign(this, fields);
  }
  /** viem's walk: the first error of the cause chain `accept` takes, or the last one without it. */
  walk(accept?: (error: unknown) => boolean): unknown {
    let error: ForeignViemError | undefined = this;
    let last: ForeignViemError = this;
    while (error) {
      if (accept?.(error)) return error;
      last = error;
      error = error.cause;
    }
    return accept ? null : last;
  }
}

describe('decodeContractError with errors of another build of viem', () => {
  it("decodes a Chit custom error's revert data under a foreign ContractFunctionRevertedError", () => {
    const raw = encodeErrorResult({
      abi: hubAbi,
      errorName: 'HubExitNotReady',
      args: ['0x000000000000000000000000000000000000bEEF', 1234n],
    });
    const error = new ForeignViemError(
      'ContractFunctionExecutionError',
      { contractAddress: '0x000000000000000000000000000000000000dEaD', functionName: 'finalizeExit' },
      new ForeignViemError('ContractFunctionRevertedError', { raw }),
    );
    const decoded = decodeContractError(error);
    assert.ok(decoded instanceof ContractRevertError, String(decoded));
    assert.equal(decoded.errorName, 'HubExitNotReady');
    assert.equal(decoded.functionName, 'finalizeExit');
  });

  it('keeps a foreign error without revert data as a ContractCallError with its short message', () => {
    const decoded = decodeContractError(new ForeignViemError('HttpRequestError'));
    assert.ok(decoded instanceof ContractCallError);
    assert.equal(decoded.shortMessage, 'HttpRequestError: a viem error of another build');
  });
});
