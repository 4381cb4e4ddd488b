// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {HubStatus} from "../types/HubStatus.sol";
import {CompactSignature} from "../types/CompactSignature.sol";

/// @title IHub
/// @notice One operator's payment hub: consumer channels, provider channels, the operator's stake,
/// its fee schedule and its solvency state. Created by the Registry as an EIP-1167 clone.
/// @dev Every amount is a token amount in the Registry's token. Every promise is cumulative:
/// settling pays `total - settled` and a later promise supersedes all earlier ones.
interface IHub {
    /// @notice A consumer promise ready to settle: the fields of the EIP-712 `ConsumerPromise` the
    /// consumer signed, with the preimage R in place of its hashlock, and the signature.
    /// @dev The hashlock is `keccak256(preimage)`, so it is derived rather than sent.
    /// @param consumer The consumer whose channel pays.
    /// @param total The consumer's cumulative total promised to this hub, across all its providers.
    /// @param agreementHash EIP-712 struct hash of the `Agreement` (provider, agreement id, agreement
    /// total) the promise pays for; the contract needs only the consumer's binding to it.
    /// @param preimage The R whose keccak256 is the promise's hashlock; revealed in the settlement event.
    /// @param signature The consumer's signature.
    struct ConsumerClaim {
        address consumer;
        uint256 total;
        bytes32 agreementHash;
        bytes32 preimage;
        CompactSignature signature;
    }

    /// @notice A hub promise ready to settle: the fields of the EIP-712 `HubPromise` the operator
    /// signed, with the preimage R in place of its hashlock, and the signatures.
    /// @param provider The provider identity owed the money.
    /// @param total The cumulative total this hub owes the provider, before the hub fee.
    /// @param preimage The R whose keccak256 is the promise's hashlock (the same hashlock as the
    /// consumer promise it was exchanged for); revealed in the settlement event.
    /// @param relayerFee Tokens paid to the caller out of the provider's payout; zero when the
    /// provider settles for itself.
    /// @param hubSignature The operator's signature of the promise.
    /// @param providerSignature The provider's EIP-712 `SettlementAuthorization` of a non-zero relayer
    /// fee naming the caller as `relayer` (the relayer is not in the claim: it is `msg.sender`, so a
    /// claim submitted by anyone else fails its signature check); ignored (best left zero) when the
    /// relayer fee is zero.
    struct ProviderClaim {
        address provider;
        uint256 total;
        bytes32 preimage;
        uint256 relayerFee;
        CompactSignature hubSignature;
        CompactSignature providerSignature;
    }

    /// @notice A consumer channel as stored.
    /// @param balance Tokens the consumer has in the channel and has not yet settled to the hub.
    /// @param settled The highest promise total settled so far.
    struct ConsumerChannel {
        uint128 balance;
        uint128 settled;
    }

    /// @notice A pending consumer exit.
    /// @param amount Tokens the consumer asked to take out.
    /// @param readyAt Timestamp from which the exit can be finalized; zero when no exit is pending.
    struct ExitRequest {
        uint128 amount;
        uint64 readyAt;
    }

    /// @notice The operator's configuration, packed in one slot.
    /// @param operator Address that runs the hub and signs its promises.
    /// @param status Lifecycle and solvency state.
    /// @param consumersPaused Whether new consumers are refused.
    /// @param fee The hub fee in basis points in force until `pendingFeeAt`.
    /// @param pendingFee The fee in basis points in force from `pendingFeeAt`.
    /// @param pendingFeeAt When `pendingFee` takes effect; zero when no change is scheduled.
    struct Config {
        address operator;
        HubStatus status;
        bool consumersPaused;
        uint16 fee;
        uint16 pendingFee;
        uint48 pendingFeeAt;
    }

    // ---------------------------------------------------------------- errors

    /// @notice A call that only the Registry may make came from `caller`.
    error HubOnlyRegistry(address caller);
    /// @notice A call that only the operator may make came from `caller`.
    error HubOnlyOperator(address caller);
    /// @notice An amount of zero was given where tokens must move.
    error HubZeroAmount();
    /// @notice The hub takes no deposits in `status`.
    error HubNotAcceptingDeposits(HubStatus status);
    /// @notice The hub refuses new consumers and `consumer` has no channel yet.
    error HubConsumersPaused(address consumer);
    /// @notice A signature did not come from `expected`; `recovered` is what it recovered to
    /// (zero for a malformed or malleable signature).
    error HubInvalidSignature(address expected, address recovered);
    /// @notice A consumer promise of `total` for `consumer` is not above the settled total.
    error HubConsumerPromiseStale(address consumer, uint256 total, uint256 settled);
    /// @notice The consumer channel of `consumer` is empty: nothing can be settled from it.
    error HubConsumerBalanceEmpty(address consumer);
    /// @notice A hub promise of `total` for `provider` is not above the settled total.
    error HubProviderPromiseStale(address provider, uint256 total, uint256 settled);
    /// @notice The relayer fee `relayerFee` exceeds the provider's payout `payout`.
    error HubRelayerFeeTooHigh(uint256 relayerFee, uint256 payout);
    /// @notice A claim needs `needed` tokens but free funds and stake together hold only `available`.
    error HubInsufficientFunds(uint256 needed, uint256 available);
    /// @notice `consumer` has `balance` tokens, fewer than the `needed` asked for.
    error HubInsufficientBalance(address consumer, uint256 balance, uint256 needed);
    /// @notice `consumer` has no pending exit.
    error HubNoExitPending(address consumer);
    /// @notice The exit of `consumer` can be finalized only from `readyAt`.
    error HubExitNotReady(address consumer, uint256 readyAt);
    /// @notice A signed authorization expired at `deadline`.
    error HubSignatureExpired(uint256 deadline);
    /// @notice `fee` basis points exceeds the cap `maxFee`.
    error HubFeeTooHigh(uint256 fee, uint256 maxFee);
    /// @notice The stake would fall to `stake`, below the minimum `minStake`.
    error HubStakeBelowMinimum(uint256 stake, uint256 minStake);
    /// @notice The stake holds `stake`, fewer than the `needed` asked for.
    error HubInsufficientStake(uint256 stake, uint256 needed);
    /// @notice Free funds hold `freeFunds`, fewer than the `needed` asked for.
    error HubInsufficientFreeFunds(uint256 freeFunds, uint256 needed);
    /// @notice The action is not allowed while the hub is in `status`.
    error HubInvalidStatus(HubStatus status);
    /// @notice The hub can be closed only from `closesAt`.
    error HubCloseNotReady(uint256 closesAt);
    /// @notice The zero address was given where an account is needed.
    error HubZeroAddress();
    /// @notice The permit of `consumer` failed and the hub's allowance is too small.
    error HubPermitFailed(address consumer);

    // ---------------------------------------------------------------- events

    /// @notice `payer` deposited `amount` into the channel of `consumer`, whose balance is now `balance`.
    event Deposited(address indexed consumer, address indexed payer, uint256 amount, uint256 balance);
    /// @notice A consumer promise of `total` was settled: `amount` moved from the consumer's balance
    /// to the hub's free funds. `preimage` is the R of the promise's hashlock.
    event ConsumerSettled(address indexed consumer, uint256 total, uint256 amount, bytes32 preimage);
    /// @notice A hub promise of `total` was settled for `provider`: `amount` newly settled, of which
    /// `hubFee` stayed with the hub, `relayerFee` went to the transaction's sender and the rest to the
    /// provider's beneficiary (the token's Transfer event shows it). `preimage` is the R of the
    /// promise's hashlock.
    event ProviderSettled(
        address indexed provider, uint256 total, uint256 amount, uint256 hubFee, uint256 relayerFee, bytes32 preimage
    );
    /// @notice `consumer` asked to exit with `amount`, which it can finalize from `readyAt`.
    event ExitRequested(address indexed consumer, uint256 amount, uint256 readyAt);
    /// @notice `consumer` withdrew its pending exit request.
    event ExitCancelled(address indexed consumer);
    /// @notice `consumer` took `amount` out of its channel after the timelock.
    event ExitFinalized(address indexed consumer, uint256 amount);
    /// @notice `consumer` took `amount` out of its channel at once, co-signed by the hub.
    event InstantExited(address indexed consumer, uint256 amount, uint256 nonce);
    /// @notice The stake grew by `amount` to `stake`.
    event StakeIncreased(uint256 amount, uint256 stake);
    /// @notice The stake shrank by `amount` to `stake`, paid to the operator.
    event StakeDecreased(uint256 amount, uint256 stake);
    /// @notice `amount` was added to the hub's free funds by `from`.
    event FreeFundsAdded(address indexed from, uint256 amount, uint256 freeFunds);
    /// @notice The operator took `amount` of free funds to `to`.
    event FreeFundsWithdrawn(address indexed to, uint256 amount, uint256 freeFunds);
    /// @notice The fee changes to `fee` basis points at `effectiveAt`.
    event FeeChangeScheduled(uint256 fee, uint256 effectiveAt);
    /// @notice New consumers are now refused (`paused`) or welcome again.
    event ConsumersPausedSet(bool paused);
    /// @notice Provider claims took `fromStake` tokens from the stake, leaving `stake`: the hub is
    /// punished until the operator tops the stake up by `owed`.
    event HubPunished(uint256 fromStake, uint256 stake, uint256 owed);
    /// @notice The operator restored the stake: the hub is active again.
    event HubPunishmentEnded(uint256 stake);
    /// @notice The operator started closing the hub; it can be closed from `closesAt`.
    event CloseRequested(uint256 closesAt);
    /// @notice The hub closed and returned `amount` (stake and free funds) to `operator`.
    event HubClosed(address indexed operator, uint256 amount);

    // ---------------------------------------------------------------- set-up

    /// @notice Sets up a new clone. Called once, by the Registry, right after it created the clone
    /// and moved the stake into it.
    /// @param operator The operator who runs this hub and signs its promises.
    /// @param fee The hub fee in basis points.
    /// @param stake The stake the Registry moved into the hub.
    function initialize(address operator, uint16 fee, uint256 stake) external;

    // ---------------------------------------------------------------- consumers

    /// @notice Deposits `amount` from the caller into the caller's channel (after `approve`).
    /// @param amount Tokens to deposit.
    function deposit(uint256 amount) external;

    /// @notice Deposits `amount` from the caller into the channel of `consumer` (after `approve`).
    /// @param consumer The channel credited.
    /// @param amount Tokens to deposit.
    function depositFor(address consumer, uint256 amount) external;

    /// @notice Deposits `amount` from `consumer` into its own channel with an EIP-2612 permit, in one
    /// call. Anyone may submit it, so a consumer without a gas token can have it relayed.
    /// @dev The same permit already submitted to the token by a front-runner is tolerated: the deposit
    /// goes on with the allowance it granted. Any other failing permit reverts.
    /// @param consumer The token owner whose channel is credited.
    /// @param amount Tokens to deposit.
    /// @param deadline The permit's deadline.
    /// @param v The permit signature's v.
    /// @param r The permit signature's r.
    /// @param s The permit signature's s.
    function depositWithPermit(address consumer, uint256 amount, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external;

    /// @notice Asks to take `amount` out of the caller's channel after the exit timelock. Replaces any
    /// pending request. During the timelock the hub can still settle the caller's promises.
    /// @param amount Tokens to take out.
    function requestExit(uint256 amount) external;

    /// @notice Withdraws the caller's pending exit request.
    function cancelExit() external;

    /// @notice Completes the caller's exit once the timelock has passed: pays the amount asked, or the
    /// balance if the hub settled promises meanwhile and less is left.
    /// @return amount The tokens paid to the caller.
    function finalizeExit() external returns (uint256 amount);

    /// @notice Takes `amount` out of the caller's channel at once, with the hub's EIP-712 `InstantExit`
    /// co-signature.
    /// @param amount Tokens to take out.
    /// @param deadline Last timestamp at which the hub's signature is valid.
    /// @param hubSignature The operator's signature.
    function instantExit(uint256 amount, uint256 deadline, bytes calldata hubSignature) external;

    // ---------------------------------------------------------------- settlement

    /// @notice Settles one consumer promise: `total - settled` (or what is left in the channel) moves
    /// from the consumer's balance to the hub's free funds. Anyone may submit it.
    /// @param claim The promise, its preimage and the consumer's signature.
    /// @return amount Tokens moved.
    function settleConsumer(ConsumerClaim calldata claim) external returns (uint256 amount);

    /// @notice Settles many consumer promises in one transaction. Claims with nothing left to settle
    /// (stale, or an empty channel) are skipped so that a front-run cannot make the batch revert;
    /// an invalid signature or preimage reverts the whole batch.
    /// @param claims The claims.
    /// @return amount Tokens moved in total.
    function settleConsumers(ConsumerClaim[] calldata claims) external returns (uint256 amount);

    /// @notice Settles one hub promise: pays `total - settled`, less the hub fee and the relayer fee,
    /// to the provider's beneficiary and the relayer fee to the caller. Anyone may submit it.
    /// @param claim The promise, its preimage, the relayer fee and the signatures.
    /// @return payout Tokens paid to the beneficiary.
    function settleProvider(ProviderClaim calldata claim) external returns (uint256 payout);

    /// @notice Settles many hub promises in one transaction. Stale claims are skipped; invalid
    /// signatures or preimages, a relayer fee above a payout, or a total the free funds and stake
    /// cannot pay revert the whole batch.
    /// @param claims The claims.
    /// @return payout Tokens paid to beneficiaries in total.
    function settleProviders(ProviderClaim[] calldata claims) external returns (uint256 payout);

    /// @notice Sets the provider's beneficiary in the Registry with the provider's signature, then
    /// settles the claim to that new beneficiary, in one call.
    /// @dev Anyone may settle the same claim to the current beneficiary first. A provider whose old
    /// payout address is compromised should change the beneficiary on its own before settling.
    /// @param claim The claim to settle.
    /// @param beneficiary The provider's new payout address.
    /// @param beneficiarySignature The provider's EIP-712 `SetBeneficiary` signature for the Registry.
    /// @return payout Tokens paid to the new beneficiary.
    function settleProviderWithBeneficiary(
        ProviderClaim calldata claim,
        address beneficiary,
        bytes calldata beneficiarySignature
    ) external returns (uint256 payout);

    // ---------------------------------------------------------------- operator

    /// @notice Adds `amount` to the stake from the caller. A punished hub is active again once the
    /// stake taken by claims has been put back.
    /// @param amount Tokens to add.
    function increaseStake(uint256 amount) external;

    /// @notice Returns `amount` of stake to the operator; never below the minimum while the hub is
    /// active, never while it is punished.
    /// @param amount Tokens to take out.
    function decreaseStake(uint256 amount) external;

    /// @notice Adds `amount` from the caller to the hub's free funds, the liquidity that pays providers.
    /// @param amount Tokens to add.
    function addFreeFunds(uint256 amount) external;

    /// @notice Pays `amount` of the hub's free funds to `to`. Only the operator.
    /// @param to Recipient.
    /// @param amount Tokens to pay.
    function withdrawFreeFunds(address to, uint256 amount) external;

    /// @notice Schedules the hub fee to become `fee` basis points after the fee-change delay.
    /// @param fee The new fee in basis points.
    function scheduleFee(uint16 fee) external;

    /// @notice Refuses (`true`) or welcomes again (`false`) new consumers.
    /// @param paused Whether new consumers are refused.
    function setConsumersPaused(bool paused) external;

    /// @notice Starts closing the hub: deposits stop and the hub can be closed after the close delay.
    /// Only an active hub that is not punished can start closing.
    function requestClose() external;

    /// @notice Closes the hub after the close delay and returns the stake and free funds to the
    /// operator. Consumer balances stay and can still be exited.
    function close() external;

    // ---------------------------------------------------------------- views

    /// @notice The Registry that created this hub.
    /// @return The Registry.
    function registry() external view returns (address);

    /// @notice The token this hub holds.
    /// @return The token.
    function token() external view returns (address);

    /// @notice The operator's configuration.
    /// @return The configuration.
    function config() external view returns (Config memory);

    /// @notice The operator, who signs this hub's promises.
    /// @return The operator.
    function operator() external view returns (address);

    /// @notice The lifecycle and solvency state; `Punished` is visible to every client.
    /// @return The status.
    function status() external view returns (HubStatus);

    /// @notice Whether the hub is punished: a provider claim was paid from the stake.
    /// @return True while punished.
    function isPunished() external view returns (bool);

    /// @notice The hub fee in basis points in force now.
    /// @return The fee.
    function currentFee() external view returns (uint16);

    /// @notice The operator's stake.
    /// @return The stake.
    function stake() external view returns (uint256);

    /// @notice Tokens claims took from the stake that the operator has yet to put back.
    /// @return The amount owed to the stake.
    function stakeOwed() external view returns (uint256);

    /// @notice The hub's free funds: its own money, which pays providers.
    /// @return The free funds.
    function freeFunds() external view returns (uint256);

    /// @notice When the hub can be (or could be, once closed) closed; zero until the operator asks to close.
    /// @return The timestamp.
    function closesAt() external view returns (uint256);

    /// @notice The channel of `consumer`.
    /// @param consumer The consumer.
    /// @return The channel.
    function consumerChannel(address consumer) external view returns (ConsumerChannel memory);

    /// @notice The pending exit of `consumer`.
    /// @param consumer The consumer.
    /// @return The exit request.
    function exitRequest(address consumer) external view returns (ExitRequest memory);

    /// @notice The total settled so far for `provider`.
    /// @param provider The provider.
    /// @return The settled total.
    function providerSettled(address provider) external view returns (uint256);

    /// @notice The next nonce of `consumer` for an instant exit.
    /// @param consumer The consumer.
    /// @return The nonce.
    function nonces(address consumer) external view returns (uint256);

    /// @notice The EIP-712 domain separator of this hub.
    /// @return The domain separator.
    function domainSeparator() external view returns (bytes32);

    /// @notice The minimum stake, the fee cap and the delays shared by every hub of the Registry.
    /// @return minStake The minimum stake while active.
    /// @return maxFee The fee cap in basis points.
    /// @return exitDelay Seconds a consumer waits between requesting and finalizing an exit.
    /// @return feeDelay Seconds before a scheduled fee takes effect.
    /// @return closeDelay Seconds between requesting to close and closing.
    function parameters()
        external
        view
        returns (uint256 minStake, uint16 maxFee, uint64 exitDelay, uint64 feeDelay, uint64 closeDelay);
}
