-- A settlement's failure gets a code a client can branch on (hub/src/settlement/settlement.types.ts,
-- SettlementErrorCode), beside `error`, the message for people: the name of the Chit contract's custom
-- error when the revert decoded to one (`HubInsufficientFreeFunds`), else one of the hub's own codes
-- (`REVERTED`, `NOTHING_TO_COLLECT`, `NOT_SETTLED`, `DROPPED`, `REPLACED`, `REORGED`, `INVALID_CLAIM`,
-- `PERMIT_REFUSED`, `WAITING_FOR_FREE_FUNDS`, `ERROR`). Both are set together, or neither.
ALTER TABLE settlements ADD COLUMN error_code text;

-- Rows written before: the code is read from the message. A bare contract error name is itself; a
-- contract error's message (a decoded revert's short message, alone or after "transaction 0x… reverted: ")
-- is its error's name, the Hub's for claims and the Registry's for relayed actions where both have one;
-- the hub's own messages are their codes; any other revert is REVERTED, and the rest ERROR.
UPDATE settlements SET error_code = CASE
  WHEN error IN (
    'FailedDeployment', 'InsufficientBalance', 'InvalidAccountNonce', 'InvalidShortString',
    'ReentrancyGuardReentrantCall', 'RegistryEmptyUrl', 'RegistryFeeTooHigh', 'RegistryHubAlreadyRegistered',
    'RegistryHubNotRegistered', 'RegistryIdentityAlreadyRegistered', 'RegistryIdentityNotRegistered',
    'RegistryInvalidParameters', 'RegistryInvalidSignature', 'RegistryStakeTooLow', 'RegistryZeroAddress',
    'SafeERC20FailedOperation', 'StringTooLong', 'HubCloseNotReady', 'HubConsumerBalanceEmpty',
    'HubConsumerPromiseStale', 'HubConsumersPaused', 'HubExitNotReady', 'HubFeeTooHigh', 'HubInsufficientBalance',
    'HubInsufficientFreeFunds', 'HubInsufficientFunds', 'HubInsufficientStake', 'HubInvalidSignature',
    'HubInvalidStatus', 'HubNoExitPending', 'HubNotAcceptingDeposits', 'HubOnlyOperator', 'HubOnlyRegistry',
    'HubPermitFailed', 'HubProviderPromiseStale', 'HubRelayerFeeTooHigh', 'HubSignatureExpired',
    'HubStakeBelowMinimum', 'HubZeroAddress', 'HubZeroAmount', 'InvalidInitialization', 'NotInitializing',
    'SafeCastOverflowedUintDowncast', 'ECDSAInvalidSignature', 'ECDSAInvalidSignatureLength',
    'ECDSAInvalidSignatureS', 'ERC20InsufficientAllowance', 'ERC20InsufficientBalance', 'ERC20InvalidApprover',
    'ERC20InvalidReceiver', 'ERC20InvalidSender', 'ERC20InvalidSpender', 'ERC2612ExpiredSignature',
    'ERC2612InvalidSigner'
  ) THEN error
  -- The contract errors a settlement or a relayed action can revert with, by their messages (the SDK's
  -- ContractRevertError short messages).
  WHEN error ~ '(^|reverted: )The signature is not from 0x' THEN
    CASE WHEN kind IN ('consumer', 'provider') THEN 'HubInvalidSignature' ELSE 'RegistryInvalidSignature' END
  WHEN error ~ '(^|reverted: )The zero address was given where an account is needed' THEN
    CASE WHEN kind IN ('consumer', 'provider') THEN 'HubZeroAddress' ELSE 'RegistryZeroAddress' END
  WHEN error ~ '(^|reverted: )The promise of 0x[0-9a-fA-F]{40} for [0-9]+ is not above its settled total'
    THEN 'HubConsumerPromiseStale'
  WHEN error ~ '(^|reverted: )The hub promise of 0x[0-9a-fA-F]{40} for [0-9]+ is not above its settled total'
    THEN 'HubProviderPromiseStale'
  WHEN error ~ '(^|reverted: )The channel of 0x[0-9a-fA-F]{40} is empty: there is nothing to settle from it'
    THEN 'HubConsumerBalanceEmpty'
  WHEN error ~ '(^|reverted: )The channel of 0x[0-9a-fA-F]{40} holds [0-9]+, less than the' THEN 'HubInsufficientBalance'
  WHEN error ~ '(^|reverted: )The relayer fee [0-9]+ exceeds the provider''s payout' THEN 'HubRelayerFeeTooHigh'
  WHEN error ~ '(^|reverted: )The hub cannot pay this claim' THEN 'HubInsufficientFunds'
  WHEN error ~ '(^|reverted: )The hub''s free funds hold [0-9]+, less than the' THEN 'HubInsufficientFreeFunds'
  WHEN error ~ '(^|reverted: )The amount is zero' THEN 'HubZeroAmount'
  WHEN error ~ '(^|reverted: )Not allowed while the hub is' THEN 'HubInvalidStatus'
  WHEN error ~ '(^|reverted: )The signature expired at' THEN 'HubSignatureExpired'
  WHEN error ~ '(^|reverted: )Only the hub''s operator may do this' THEN 'HubOnlyOperator'
  WHEN error ~ '(^|reverted: )0x[0-9a-fA-F]{40} is already registered' THEN 'RegistryIdentityAlreadyRegistered'
  WHEN error ~ '(^|reverted: )0x[0-9a-fA-F]{40} is not registered' THEN 'RegistryIdentityNotRegistered'
  WHEN error ~ '(^|reverted: )0x[0-9a-fA-F]{40} holds [0-9]+ tokens, less than the' THEN 'ERC20InsufficientBalance'
  WHEN error ~ '(^|reverted: )0x[0-9a-fA-F]{40} may spend [0-9]+ tokens, less than the' THEN 'ERC20InsufficientAllowance'
  WHEN error ~ '(^|reverted: )The nonce is not the current nonce' THEN 'InvalidAccountNonce'
  WHEN error ~ '(^|reverted: )The signature is invalid' THEN 'ECDSAInvalidSignature'
  WHEN error ~ '(^|reverted: )A signature of [0-9]+ bytes is invalid' THEN 'ECDSAInvalidSignatureLength'
  WHEN error ~ '(^|reverted: )The signature is malleable \(high s\)' THEN 'ECDSAInvalidSignatureS'
  WHEN error ~ '(^|reverted: )A transfer of the token 0x' THEN 'SafeERC20FailedOperation'
  -- The hub's own messages (hub/src/settlement, hub/src/chain/outbox).
  WHEN error ~ '^the channel of 0x[0-9a-fA-F]{40} is empty: nothing to collect' THEN 'NOTHING_TO_COLLECT'
  WHEN error ~ '^transaction 0x[0-9a-f]{64} did not settle it' THEN 'NOT_SETTLED'
  WHEN error ~ '(^every transaction with nonce [0-9]+ was refused|^transaction 0x[0-9a-f]{64} is not recorded)'
    THEN 'DROPPED'
  WHEN error ~ 'was used by a transaction the hub did not send' THEN 'REPLACED'
  WHEN error ~ '\(reorg\)' THEN 'REORGED'
  WHEN error ~ '(^no exchange 0x[0-9a-f]{64} of (consumer|provider) |^the promise of 0x[0-9a-fA-F]{40} for [0-9]+ is not signed by it)'
    THEN 'INVALID_CLAIM'
  WHEN error ~ '^the (token refuses the identity''s permit|identity''s permit) of the relayer fee' THEN 'PERMIT_REFUSED'
  WHEN error ~ '^the hub''s free funds \([0-9]+\) do not cover [0-9]+ yet' THEN 'WAITING_FOR_FREE_FUNDS'
  WHEN error ~ '(^transaction 0x[0-9a-f]{64} reverted: |^The contract reverted with unknown data)' THEN 'REVERTED'
  ELSE 'ERROR'
END
WHERE error IS NOT NULL;

ALTER TABLE settlements ADD CONSTRAINT settlements_error_code
  CHECK ((error IS NULL) = (error_code IS NULL) AND error_code ~ '^[A-Za-z][A-Za-z0-9_]{0,63}$');
