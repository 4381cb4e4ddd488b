import {
  type AbiParameterToPrimitiveType,
  type Address,
  BaseError,
  ContractFunctionExecutionError,
  ContractFunctionRevertedError,
  decodeErrorResult,
  type Hex,
  isHex,
  RawContractError,
  toFunctionSelector,
} from 'viem';
import { toHubStatus } from '../actions/hubStatus.js';
import { chitTokenAbi, hubAbi, registryAbi } from '../generated/abis.js';
import { ChitError } from './base.js';

type ChitAbiItem = (typeof registryAbi)[number] | (typeof hubAbi)[number] | (typeof chitTokenAbi)[number];
type ErrorAbiItem = Extract<ChitAbiItem, { type: 'error' }>;

/**
 * The name of a custom error of the Chit contracts (Registry, Hub, token, and the libraries they use).
 *
 * @example
 * const retryLater: ContractErrorName[] = ['HubExitNotReady', 'HubCloseNotReady'];
 */
export type ContractErrorName = ErrorAbiItem['name'];

/**
 * The arguments of the custom error `name`, by parameter name, as viem decodes them (`uint256` as
 * bigint, `uint8` as number, `address` as a checksummed string).
 *
 * @example
 * const args: ContractErrorArgs<'HubInsufficientBalance'> = { consumer, balance: 5n, needed: 7n };
 */
export type ContractErrorArgs<name extends ContractErrorName> = name extends ContractErrorName
  ? {
      [parameter in Extract<
        ErrorAbiItem,
        { name: name }
      >['inputs'][number] as parameter['name']]: AbiParameterToPrimitiveType<parameter>;
    }
  : never;

function errorSignature(item: ErrorAbiItem): string {
  return `${item.name}(${item.inputs.map((input) => input.type).join(',')})`;
}

/**
 * Every custom error the Chit contracts can revert with, including the token's and OpenZeppelin's
 * that a Hub or Registry call lets through: the ABI {@link decodeContractError} decodes with.
 *
 * @example
 * const { errorName, args } = decodeErrorResult({ abi: chitErrorAbi, data: revertData });
 */
export const chitErrorAbi: readonly ErrorAbiItem[] = (() => {
  const seen = new Map<string, ErrorAbiItem>();
  for (const item of [...registryAbi, ...hubAbi, ...chitTokenAbi]) {
    if (item.type === 'error' && !seen.has(errorSignature(item))) seen.set(errorSignature(item), item);
  }
  return [...seen.values()];
})();

interface Explanation {
  shortMessage: string;
  details?: string;
}

type Explanations = { [name in ContractErrorName]: (args: ContractErrorArgs<name>) => Explanation };

const ZERO_ADDRESS = '0x0000000000000000000000000000000000000000';

const time = (seconds: bigint) => new Date(Number(seconds) * 1000).toISOString();

const signatureDetails = (recovered: Address) =>
  recovered === ZERO_ADDRESS
    ? 'The signature is malformed or malleable (high s).'
    : `It recovers to ${recovered}: it was signed by another key, or for another contract, chain, nonce or message.`;

const explanations: Explanations = {
  // Registry
  RegistryStakeTooLow: ({ stake, minStake }) => ({
    shortMessage: `The stake ${stake} is below the minimum stake ${minStake}`,
    details: 'Register the hub with at least the minimum stake.',
  }),
  RegistryFeeTooHigh: ({ fee, maxFee }) => ({
    shortMessage: `A fee of ${fee} basis points is above the cap of ${maxFee}`,
  }),
  RegistryHubAlreadyRegistered: ({ operator, hub }) => ({
    shortMessage: `${operator} already runs the hub ${hub}`,
    details: 'An operator runs one hub: use it, or register another hub from another address.',
  }),
  RegistryHubNotRegistered: ({ operator }) => ({ shortMessage: `${operator} runs no hub` }),
  RegistryEmptyUrl: () => ({ shortMessage: 'The hub URL is empty' }),
  RegistryIdentityAlreadyRegistered: ({ identity }) => ({
    shortMessage: `${identity} is already registered`,
    details: 'To change where its earnings go, use setBeneficiary.',
  }),
  RegistryIdentityNotRegistered: ({ identity }) => ({
    shortMessage: `${identity} is not registered`,
    details: 'Register it first with registerIdentity (or registerIdentityRelayed).',
  }),
  RegistryZeroAddress: () => ({ shortMessage: 'The zero address was given where an account is needed' }),
  RegistryInvalidSignature: ({ identity, recovered }) => ({
    shortMessage: `The signature is not from ${identity}`,
    details: `${signatureDetails(recovered)} A relayed signature is valid once, and a registration only from the relayer it names: sign again with the current nonce.`,
  }),
  RegistryInvalidParameters: ({ reason }) => ({ shortMessage: `Invalid Registry parameters: ${reason}` }),

  // Hub
  HubOnlyRegistry: ({ caller }) => ({ shortMessage: `Only the Registry may call this, not ${caller}` }),
  HubOnlyOperator: ({ caller }) => ({ shortMessage: `Only the hub's operator may do this, not ${caller}` }),
  HubZeroAmount: () => ({ shortMessage: 'The amount is zero' }),
  HubNotAcceptingDeposits: ({ status }) => ({
    shortMessage: `The hub takes no deposits while ${toHubStatus(status)}`,
    details: 'Choose another hub (listHubs).',
  }),
  HubConsumersPaused: ({ consumer }) => ({
    shortMessage: `The hub takes no new consumers, and ${consumer} has no channel there yet`,
    details: 'Choose another hub (listHubs), or try again later.',
  }),
  HubInvalidSignature: ({ expected, recovered }) => ({
    shortMessage: `The signature is not from ${expected}`,
    details: signatureDetails(recovered),
  }),
  HubConsumerPromiseStale: ({ consumer, total, settled }) => ({
    shortMessage: `The promise of ${consumer} for ${total} is not above its settled total ${settled}`,
    details: 'It was already settled, or a later promise was: there is nothing left to collect with it.',
  }),
  HubConsumerBalanceEmpty: ({ consumer }) => ({
    shortMessage: `The channel of ${consumer} is empty: there is nothing to settle from it`,
  }),
  HubProviderPromiseStale: ({ provider, total, settled }) => ({
    shortMessage: `The hub promise of ${provider} for ${total} is not above its settled total ${settled}`,
    details: 'It was already settled, or a later promise was: settle the latest one.',
  }),
  HubRelayerFeeTooHigh: ({ relayerFee, payout }) => ({
    shortMessage: `The relayer fee ${relayerFee} exceeds the provider's payout ${payout}`,
    details: 'Wait until more is owed, or settle without a relayer.',
  }),
  HubInsufficientFunds: ({ needed, available }) => ({
    shortMessage: `The hub cannot pay this claim: it needs ${needed}, its free funds and stake hold ${available}`,
  }),
  HubInsufficientBalance: ({ consumer, balance, needed }) => ({
    shortMessage: `The channel of ${consumer} holds ${balance}, less than the ${needed} asked for`,
  }),
  HubNoExitPending: ({ consumer }) => ({
    shortMessage: `${consumer} has no pending exit`,
    details: 'Request one first with requestExit.',
  }),
  HubExitNotReady: ({ consumer, readyAt }) => ({
    shortMessage: `The exit of ${consumer} can be finalized only from ${time(readyAt)}`,
    details: `Try again after ${time(readyAt)} (timestamp ${readyAt}).`,
  }),
  HubSignatureExpired: ({ deadline }) => ({
    shortMessage: `The signature expired at ${time(deadline)}`,
    details: 'Ask the hub for a new one.',
  }),
  HubFeeTooHigh: ({ fee, maxFee }) => ({ shortMessage: `A fee of ${fee} basis points is above the cap of ${maxFee}` }),
  HubStakeBelowMinimum: ({ stake, minStake }) => ({
    shortMessage: `The stake would fall to ${stake}, below the minimum stake ${minStake}`,
  }),
  HubInsufficientStake: ({ stake, needed }) => ({
    shortMessage: `The stake holds ${stake}, less than the ${needed} asked for`,
  }),
  HubInsufficientFreeFunds: ({ freeFunds, needed }) => ({
    shortMessage: `The hub's free funds hold ${freeFunds}, less than the ${needed} asked for`,
  }),
  HubInvalidStatus: ({ status }) => ({ shortMessage: `Not allowed while the hub is ${toHubStatus(status)}` }),
  HubCloseNotReady: ({ closesAt }) => ({ shortMessage: `The hub can be closed only from ${time(closesAt)}` }),
  HubZeroAddress: () => ({ shortMessage: 'The zero address was given where an account is needed' }),
  HubPermitFailed: ({ consumer }) => ({
    shortMessage: `The permit of ${consumer} was refused and the hub's allowance is too small`,
    details:
      "The permit's signer, nonce, deadline or amount does not match: sign a new one (signDepositPermit) or approve the hub.",
  }),

  // Token (EIP-6093, EIP-2612)
  ERC20InsufficientBalance: ({ sender, balance, needed }) => ({
    shortMessage: `${sender} holds ${balance} tokens, less than the ${needed} needed`,
    details: 'Get more tokens first.',
  }),
  ERC20InsufficientAllowance: ({ spender, allowance, needed }) => ({
    shortMessage: `${spender} may spend ${allowance} tokens, less than the ${needed} needed`,
    details: 'Approve it first (deposit does it for you), or deposit with a permit (depositWithPermit).',
  }),
  ERC20InvalidApprover: ({ approver }) => ({ shortMessage: `${approver} cannot approve` }),
  ERC20InvalidReceiver: ({ receiver }) => ({ shortMessage: `${receiver} cannot receive tokens` }),
  ERC20InvalidSender: ({ sender }) => ({ shortMessage: `${sender} cannot send tokens` }),
  ERC20InvalidSpender: ({ spender }) => ({ shortMessage: `${spender} cannot be approved` }),
  ERC2612ExpiredSignature: ({ deadline }) => ({
    shortMessage: `The permit expired at ${time(deadline)}`,
    details: 'Sign a new one.',
  }),
  ERC2612InvalidSigner: ({ signer, owner }) => ({
    shortMessage: `The permit is signed by ${signer}, not by the owner ${owner}`,
  }),

  // OpenZeppelin internals
  InvalidAccountNonce: ({ account, currentNonce }) => ({
    shortMessage: `The nonce is not the current nonce ${currentNonce} of ${account}`,
  }),
  ECDSAInvalidSignature: () => ({ shortMessage: 'The signature is invalid' }),
  ECDSAInvalidSignatureLength: ({ length }) => ({ shortMessage: `A signature of ${length} bytes is invalid` }),
  ECDSAInvalidSignatureS: () => ({ shortMessage: 'The signature is malleable (high s)' }),
  SafeERC20FailedOperation: ({ token }) => ({ shortMessage: `A transfer of the token ${token} failed` }),
  SafeCastOverflowedUintDowncast: ({ bits, value }) => ({ shortMessage: `${value} does not fit in ${bits} bits` }),
  ReentrancyGuardReentrantCall: () => ({ shortMessage: 'A reentrant call was refused' }),
  InvalidInitialization: () => ({ shortMessage: 'The contract is already initialized' }),
  NotInitializing: () => ({ shortMessage: 'The contract is not initializing' }),
  FailedDeployment: () => ({ shortMessage: 'Creating the hub contract failed' }),
  InsufficientBalance: ({ balance, needed }) => ({
    shortMessage: `The contract holds ${balance} wei, less than the ${needed} needed`,
  }),
  InvalidShortString: () => ({ shortMessage: 'Invalid short string' }),
  StringTooLong: ({ str }) => ({ shortMessage: `The string is too long: ${str}` }),
};

/**
 * Parameters of a {@link ContractRevertError}.
 *
 * @example
 * throw new ContractRevertError({ errorName: 'HubZeroAmount', args: {}, data: '0x6c215ace' });
 */
export interface ContractRevertErrorParameters<name extends ContractErrorName> {
  errorName: name;
  args: ContractErrorArgs<name>;
  /** The raw revert data. */
  data: Hex;
  contractAddress?: Address | undefined;
  functionName?: string | undefined;
  cause?: unknown;
}

/**
 * A Chit contract reverted with the custom error `errorName`; `args` holds its arguments by name.
 * `shortMessage` says what went wrong in words, `details` what to do next where that is clear.
 * Narrow it with {@link ContractRevertError.is} to read typed arguments.
 *
 * @example
 * try {
 *   await requestExit(client, { hub, amount });
 * } catch (error) {
 *   if (error instanceof ContractRevertError && error.is('HubInsufficientBalance')) {
 *     console.error(`only ${error.args.balance} left in the channel`);
 *   }
 * }
 */
export class ContractRevertError<name extends ContractErrorName = ContractErrorName> extends ChitError {
  override name = 'ContractRevertError';
  /** The Solidity custom error, for example `HubInsufficientBalance`. */
  readonly errorName: name;
  /** Its arguments by parameter name, for example `{ consumer, balance, needed }`. */
  readonly args: ContractErrorArgs<name>;
  /** The raw revert data. */
  readonly data: Hex;
  /** The contract called, when known. */
  readonly contractAddress: Address | undefined;
  /** The function called, when known. */
  readonly functionName: string | undefined;

  constructor(parameters: ContractRevertErrorParameters<name>) {
    const explain = explanations[parameters.errorName] as (args: ContractErrorArgs<name>) => Explanation;
    const { shortMessage, details } = explain(parameters.args);
    super('CONTRACT_REVERT', shortMessage, { details, cause: parameters.cause });
    this.errorName = parameters.errorName;
    this.args = parameters.args;
    this.data = parameters.data;
    this.contractAddress = parameters.contractAddress;
    this.functionName = parameters.functionName;
  }

  /**
   * Whether the contract reverted with `errorName`; narrows `args` to that error's arguments.
   *
   * @example
   * if (error.is('HubExitNotReady')) console.log(error.args.readyAt);
   */
  is<other extends ContractErrorName>(errorName: other): this is ContractRevertError<other> {
    return (this.errorName as string) === errorName;
  }
}

/**
 * Parameters of a {@link ContractCallError}.
 *
 * @example
 * throw new ContractCallError({ shortMessage: 'The node did not answer', cause: error });
 */
export interface ContractCallErrorParameters {
  shortMessage: string;
  details?: string | undefined;
  /** Raw revert data that no Chit ABI decodes, if the call reverted. */
  revertData?: Hex | undefined;
  contractAddress?: Address | undefined;
  functionName?: string | undefined;
  cause?: unknown;
}

/**
 * A contract call or transaction failed without a Chit custom error: the node or the network failed,
 * the wallet refused, the account lacks gas money, or the contract reverted with data no Chit ABI
 * decodes (a panic, an unknown error). `cause` holds viem's error.
 *
 * @example
 * try {
 *   await deposit(client, { hub, amount });
 * } catch (error) {
 *   if (error instanceof ContractCallError) console.error(error.shortMessage, error.cause);
 * }
 */
export class ContractCallError extends ChitError {
  override name = 'ContractCallError';
  readonly revertData: Hex | undefined;
  readonly contractAddress: Address | undefined;
  readonly functionName: string | undefined;

  constructor(parameters: ContractCallErrorParameters) {
    super('CONTRACT_CALL_FAILED', parameters.shortMessage, { details: parameters.details, cause: parameters.cause });
    this.revertData = parameters.revertData;
    this.contractAddress = parameters.contractAddress;
    this.functionName = parameters.functionName;
  }
}

/**
 * Whether `error` is viem's error of class `type` (named `name`), from this copy of viem or another: a
 * CommonJS caller of this ESM SDK hands it clients whose actions throw the other build's classes.
 */
function isViem<T>(error: unknown, type: abstract new (...args: never[]) => T, name: string): error is T {
  return error instanceof type || (error instanceof Error && error.name === name);
}

/** A viem error (it has `walk` and `shortMessage`), of either build. */
function isViemBase(error: unknown): error is BaseError {
  return (
    error instanceof BaseError ||
    (error instanceof Error && typeof (error as Partial<BaseError>).walk === 'function' && 'shortMessage' in error)
  );
}

function revertDataOf(error: BaseError): Hex | undefined {
  const reverted = error.walk(
    (e) =>
      isViem(e, ContractFunctionRevertedError, 'ContractFunctionRevertedError') ||
      isViem(e, RawContractError, 'RawContractError'),
  );
  if (isViem(reverted, ContractFunctionRevertedError, 'ContractFunctionRevertedError')) return reverted.raw;
  // Otherwise the node's error at the bottom of the chain may carry it (viem's `call` leaves it there).
  const carrier = (reverted ?? error.walk()) as { data?: unknown };
  const data = typeof carrier.data === 'object' ? (carrier.data as { data?: unknown } | null)?.data : carrier.data;
  return typeof data === 'string' && isHex(data) && data !== '0x' ? data : undefined;
}

const PANIC_SELECTOR = toFunctionSelector('Panic(uint256)');
const ERROR_SELECTOR = toFunctionSelector('Error(string)');

function fromRevertData(
  data: Hex,
  context: { contractAddress?: Address | undefined; functionName?: string | undefined; cause?: unknown },
): ContractRevertError | undefined {
  try {
    const decoded = decodeErrorResult({ abi: chitErrorAbi, data });
    if (decoded.abiItem?.type !== 'error') return undefined;
    const args: Record<string, unknown> = {};
    decoded.abiItem.inputs.forEach((input, i) => {
      args[input.name] = decoded.args?.[i];
    });
    return new ContractRevertError({
      errorName: decoded.errorName as ContractErrorName,
      args: args as ContractErrorArgs<ContractErrorName>,
      data,
      ...context,
    });
  } catch {
    return undefined;
  }
}

/**
 * What was called, for errors whose cause does not say (raw revert data, a replayed transaction).
 *
 * @example
 * throw decodeContractError(revertData, { contractAddress: hub, functionName: 'settleConsumers' });
 */
export interface DecodeContractErrorContext {
  contractAddress?: Address | undefined;
  functionName?: string | undefined;
}

/**
 * Turns whatever a contract call or transaction threw into the SDK's error: a
 * {@link ContractRevertError} when the revert data decodes by the Chit ABIs (whichever contract
 * raised it: a Hub call can revert with the token's error), otherwise a {@link ContractCallError}
 * wrapping the original error. Raw revert data (`0x…`) is decoded too; SDK errors pass through unchanged.
 * `context` names the contract and function where the error itself does not.
 *
 * @example
 * try {
 *   await publicClient.simulateContract({ address: hub, abi: hubAbi, functionName: 'cancelExit', account });
 * } catch (error) {
 *   throw decodeContractError(error); // ContractRevertError<'HubNoExitPending'>
 * }
 */
export function decodeContractError(error: unknown, context: DecodeContractErrorContext = {}): ChitError {
  if (error instanceof ChitError) return error;
  if (typeof error === 'string' && isHex(error)) {
    return (
      fromRevertData(error, context) ??
      new ContractCallError({
        shortMessage: `The contract reverted with unknown data ${error.slice(0, 10)}`,
        revertData: error,
        ...context,
      })
    );
  }
  if (!isViemBase(error)) {
    return new ContractCallError({
      shortMessage: error instanceof Error ? error.message : String(error),
      cause: error,
    });
  }

  const execution = error.walk((e) => isViem(e, ContractFunctionExecutionError, 'ContractFunctionExecutionError'));
  if (isViem(execution, ContractFunctionExecutionError, 'ContractFunctionExecutionError')) {
    context = { contractAddress: execution.contractAddress, functionName: execution.functionName };
  }
  const data = revertDataOf(error);
  if (data) {
    const decoded = fromRevertData(data, { ...context, cause: error });
    if (decoded) return decoded;
  }
  const reverted = error.walk((e) => isViem(e, ContractFunctionRevertedError, 'ContractFunctionRevertedError'));
  let shortMessage = error.shortMessage;
  if (isViem(reverted, ContractFunctionRevertedError, 'ContractFunctionRevertedError')) {
    if (data?.startsWith(PANIC_SELECTOR)) shortMessage = `The contract panicked: ${reverted.reason ?? data}`;
    else if (data?.startsWith(ERROR_SELECTOR)) shortMessage = `The contract reverted: ${reverted.reason}`;
    else if (data) shortMessage = `The contract reverted with an unknown error ${data.slice(0, 10)}`;
    else shortMessage = 'The contract reverted without a reason';
  }
  return new ContractCallError({ shortMessage, details: error.details, revertData: data, ...context, cause: error });
}
