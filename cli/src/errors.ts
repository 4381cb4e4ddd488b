import {
  ChitError,
  ContractCallError,
  ContractRevertError,
  HubError,
  HubTimeoutError,
  HubUnreachableError,
  MalformedMessageError,
} from '@chit/sdk';
import {
  BaseError,
  HttpRequestError,
  InsufficientFundsError,
  TimeoutError,
  WaitForTransactionReceiptTimeoutError,
} from 'viem';

/**
 * A failure of the command line itself (configuration, keystore, input, a refused confirmation), with
 * `hint`: what the user should do next.
 *
 * @example
 * throw new CliError('RPC_URL_MISSING', 'No RPC URL is set', 'Pass --rpc-url <url> or set CHIT_RPC_URL.');
 */
export class CliError extends ChitError {
  override name = 'CliError';
  /** What to do next, in one or two sentences. */
  readonly hint: string;

  constructor(
    code: string,
    shortMessage: string,
    hint: string,
    parameters: { details?: string; cause?: unknown } = {},
  ) {
    super(code, shortMessage, parameters);
    this.hint = hint;
  }
}

/** An error as the command line reports it: on stderr in words, or as JSON with `--json`. */
export interface ErrorReport {
  /** Stable code: the SDK's (`CONTRACT_REVERT`, `OVERSPEND`, ...) or the CLI's (`WRONG_PASSWORD`, ...). */
  code: string;
  /** What went wrong, in one line. */
  message: string;
  /** Context: the values involved, why it happened. */
  details?: string | undefined;
  /** What to do next. */
  hint: string;
  /** The contract error's name, for on-chain reverts. */
  errorName?: string | undefined;
}

/** Formats token amounts (base units) for hints; the plain number when decimals are unknown. */
export type AmountFormatter = (amount: bigint) => string;

/** The command line's words for a revert: amounts in tokens, and what to do next in its own terms. */
interface RevertExplanation {
  /** Replaces the SDK's message, whose amounts are in base units. */
  message?: string;
  hint: string;
}

type Explain = (args: Record<string, unknown>, format: AmountFormatter) => RevertExplanation;

const amount = (args: Record<string, unknown>, name: string) => args[name] as bigint;
const time = (seconds: bigint) => new Date(Number(seconds) * 1000).toISOString();

// The SDK's details name SDK functions; these name commands.
const revertExplanations: Partial<Record<string, Explain>> = {
  HubNoExitPending: () => ({ hint: 'Request an exit first: `chit exit request <amount>`.' }),
  HubExitNotReady: (args) => ({
    hint: `Run \`chit exit finalize\` again after ${time(amount(args, 'readyAt'))}.`,
  }),
  HubInsufficientBalance: (args, format) => ({
    message: `The channel of ${args.consumer} holds ${format(amount(args, 'balance'))}, less than the ${format(amount(args, 'needed'))} asked for`,
    hint: 'Ask for at most what the channel holds (`chit balance`), or deposit more with `chit deposit <amount>`.',
  }),
  ERC20InsufficientBalance: (args, format) => ({
    message: `${args.sender} holds ${format(amount(args, 'balance'))}, less than the ${format(amount(args, 'needed'))} needed`,
    hint: 'Get more tokens into the identity address, or deposit less.',
  }),
  ERC20InsufficientAllowance: (args, format) => ({
    message: `${args.spender} may spend ${format(amount(args, 'allowance'))}, less than the ${format(amount(args, 'needed'))} needed`,
    hint: 'Run `chit deposit <amount>` without --permit: it approves the hub first.',
  }),
  HubSignatureExpired: () => ({ hint: 'Run the command again: it asks the hub for a fresh signature.' }),
  HubProviderPromiseStale: (args, format) => ({
    message: `The hub promise for ${format(amount(args, 'total'))} is not above the ${format(amount(args, 'settled'))} already settled to ${args.provider}`,
    hint: 'It is settled already: `chit balance` shows what is left; settle again after new earnings.',
  }),
  HubRelayerFeeTooHigh: (args, format) => ({
    message: `The relayer fee ${format(amount(args, 'relayerFee'))} exceeds the payout ${format(amount(args, 'payout'))}`,
    hint: "Settle directly (without --relayer), or wait until more is owed than the relayer's fee.",
  }),
  HubInsufficientFunds: (args, format) => ({
    message: `The hub cannot pay: it needs ${format(amount(args, 'needed'))}, its free funds and stake hold ${format(amount(args, 'available'))}`,
    hint: 'The hub is insolvent for this claim: contact its operator, and use another hub (`chit hubs`).',
  }),
  HubNotAcceptingDeposits: () => ({ hint: 'Choose an active hub: `chit hubs` lists them.' }),
  HubConsumersPaused: () => ({ hint: 'Choose another hub (`chit hubs`), or try again later.' }),
  HubZeroAmount: () => ({ hint: 'Give an amount above zero.' }),
  RegistryIdentityNotRegistered: () => ({
    hint: 'Register the identity first: `chit beneficiary set <address>` registers it.',
  }),
  RegistryInvalidSignature: () => ({ hint: 'Run the command again: it signs with the current nonce.' }),
  RegistryZeroAddress: () => ({ hint: 'Give a non-zero address.' }),
  HubPermitFailed: () => ({
    hint: 'Run `chit deposit <amount>` without --permit, or try again with a fresh permit.',
  }),
};

// What to do after a hub's refusal, in the command line's terms (docs/protocol.md, "Error codes").
const hubHints: Partial<Record<string, string>> = {
  OVERSPEND: 'Ask for less (`chit balance` shows what is available), or use `chit exit request <amount>`.',
  UNKNOWN_CONSUMER: 'Deposit first: `chit deposit <amount>`.',
  UNKNOWN_PROVIDER: 'The hub holds no promise for this identity yet: there is nothing to settle.',
  NOTHING_TO_SETTLE: 'Everything is settled already: `chit balance` shows it.',
  RELAYER_FEE_TOO_LOW: 'Gas got dearer: run the command again for a fresh quote, or settle without --relayer.',
  RELAYER_FEE_TOO_HIGH: 'Settle without --relayer, or wait until more is owed than the relayer fee.',
  STALE_REQUEST: "Check this machine's clock (it must be within five minutes of the hub's), then try again.",
  INVALID_SIGNATURE:
    'Run the command again (it signs afresh); check that --hub-url and --rpc-url are for the same hub.',
};

/**
 * Turns anything a command threw into what the user reads: the SDK's message and details, and a hint
 * naming the command, flag or variable that fixes it.
 *
 * @example
 * const report = toErrorReport(error, (amount) => formatUnits(amount, 18));
 * console.error(`error: ${report.message}\n${report.hint}`);
 */
export function toErrorReport(error: unknown, format: AmountFormatter = String): ErrorReport {
  if (error instanceof CliError) {
    return { code: error.code, message: error.shortMessage, details: error.details, hint: error.hint };
  }
  if (error instanceof ContractRevertError) {
    const explained = revertExplanations[error.errorName]?.(error.args as Record<string, unknown>, format);
    return {
      code: error.code,
      errorName: error.errorName,
      message: explained?.message ?? error.shortMessage,
      details: `${error.functionName ?? 'The call'} reverted with ${error.errorName}.`,
      hint: explained?.hint ?? error.details ?? 'Check the values and try again.',
    };
  }
  if (error instanceof HubError) {
    return {
      code: error.code,
      message: `The hub refused: ${error.shortMessage}`,
      details: error.details,
      hint:
        hubHints[error.code] ??
        (error.retryable
          ? 'Try again later, or choose another hub (--hub-url or CHIT_HUB_URL; `chit hubs` lists them).'
          : 'See the details for what the hub expects; --hub-url or CHIT_HUB_URL chooses another hub.'),
    };
  }
  if (error instanceof HubUnreachableError || error instanceof HubTimeoutError) {
    return {
      code: error.code,
      message: error.shortMessage,
      details: error.details,
      hint: 'Check the hub URL (--hub-url, CHIT_HUB_URL or "hubUrl" in the config file) and that the hub is up.',
    };
  }
  if (error instanceof MalformedMessageError) {
    return {
      code: error.code,
      message: error.shortMessage,
      hint: 'The message does not follow the wire format (docs/protocol.md): fix the field named above.',
    };
  }
  if (error instanceof ContractCallError) return callErrorReport(error);
  if (error instanceof ChitError) {
    return { code: error.code, message: error.shortMessage, details: error.details, hint: 'See `chit --help`.' };
  }
  return {
    code: 'UNEXPECTED',
    message: error instanceof Error ? error.message : String(error),
    hint: 'This is a bug in chit: run again with CHIT_DEBUG=1 for the stack trace, and report it.',
  };
}

function callErrorReport(error: ContractCallError): ErrorReport {
  const cause = error.cause instanceof BaseError ? error.cause : undefined;
  const found = (type: abstract new (...args: never[]) => unknown) => cause?.walk((e) => e instanceof type);
  if (found(InsufficientFundsError)) {
    return {
      code: 'INSUFFICIENT_GAS_FUNDS',
      message: 'The account has too little ETH to pay for gas',
      details: error.shortMessage,
      hint: 'Send some ETH to the identity address (`chit identity show` prints it), then run the command again; on a local chain (31337, as `npm start` runs), `chit identity fund` gives it ETH and test tokens.',
    };
  }
  const http = found(HttpRequestError);
  if (http instanceof HttpRequestError) {
    return {
      code: 'RPC_UNREACHABLE',
      message: `The RPC node at ${http.url} did not answer`,
      details: error.shortMessage,
      hint: 'Check the RPC URL (--rpc-url, CHIT_RPC_URL or "rpcUrl" in the config file) and that the node is up.',
    };
  }
  if (found(WaitForTransactionReceiptTimeoutError) || found(TimeoutError)) {
    return {
      code: 'TIMEOUT',
      message: error.shortMessage,
      hint: 'The transaction may still be mined: check `chit balance` before sending it again.',
    };
  }
  return {
    code: error.code,
    message: error.shortMessage,
    details: error.details,
    hint: 'Check the RPC node and the addresses in the configuration, then try again.',
  };
}
