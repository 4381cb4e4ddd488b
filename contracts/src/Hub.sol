// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Initializable} from "@openzeppelin/contracts/proxy/utils/Initializable.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {IHub} from "./interfaces/IHub.sol";
import {IRegistry} from "./interfaces/IRegistry.sol";
import {HubStatus} from "./types/HubStatus.sol";
import {CompactSignature} from "./types/CompactSignature.sol";
import {Signatures} from "./libraries/Signatures.sol";
import {TypedData} from "./libraries/TypedData.sol";
import {Fees} from "./libraries/Fees.sol";

/// @title Hub
/// @notice One operator's payment hub. See {IHub}.
/// @dev Deployed once as an implementation by the Registry, then cloned (EIP-1167) per operator.
/// Parameters shared by all hubs are immutables of the implementation, so clones read them from code.
/// The EIP-712 domain of a clone is its own address: OpenZeppelin's EIP712 rebuilds the separator
/// whenever `address(this)` differs from the implementation's.
contract Hub is IHub, Initializable, EIP712, Nonces, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;
    using SafeCast for uint256;

    bytes32 private constant _PERMIT_TYPEHASH =
        keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)");

    IERC20 private immutable _token;
    IRegistry private immutable _registry;
    uint256 private immutable _minStake;
    uint16 private immutable _maxFee;
    uint64 private immutable _exitDelay;
    uint64 private immutable _feeDelay;
    uint64 private immutable _closeDelay;

    Config private _config;
    uint128 private _stake;
    uint128 private _freeFunds;
    uint128 private _stakeOwed;
    uint64 private _closesAt;
    mapping(address consumer => ConsumerChannel) private _consumers;
    mapping(address consumer => ExitRequest) private _exits;
    mapping(address provider => uint256 settled) private _providerSettled;

    /// @dev A provider payout decided in the first pass of a settlement and paid in the second.
    struct Payout {
        address beneficiary;
        uint256 amount;
        uint256 relayerFee;
    }

    /// @dev What every claim of one settlement transaction is checked against, read once.
    struct SettlementContext {
        bytes32 separator;
        address operator;
        uint16 fee;
    }

    modifier onlyOperator() {
        if (msg.sender != _config.operator) revert HubOnlyOperator(msg.sender);
        _;
    }

    /// @param token_ The token every hub of the Registry holds.
    /// @param parameters_ Minimum stake, fee cap and delays shared by every hub.
    constructor(IERC20 token_, IRegistry.Parameters memory parameters_) EIP712("Chit Hub", "1") {
        _token = token_;
        _registry = IRegistry(msg.sender);
        _minStake = parameters_.minStake;
        _maxFee = parameters_.maxFee;
        _exitDelay = parameters_.exitDelay;
        _feeDelay = parameters_.feeDelay;
        _closeDelay = parameters_.closeDelay;
        _disableInitializers();
    }

    /// @inheritdoc IHub
    function initialize(address operator_, uint16 fee, uint256 stake_) external initializer {
        if (msg.sender != address(_registry)) revert HubOnlyRegistry(msg.sender);
        _config = Config({
            operator: operator_,
            status: HubStatus.Active,
            consumersPaused: false,
            fee: fee,
            pendingFee: fee,
            pendingFeeAt: 0
        });
        _stake = stake_.toUint128();
    }

    // ---------------------------------------------------------------- consumers

    /// @inheritdoc IHub
    function deposit(uint256 amount) external nonReentrant {
        _deposit(msg.sender, msg.sender, amount);
    }

    /// @inheritdoc IHub
    function depositFor(address consumer, uint256 amount) external nonReentrant {
        _deposit(consumer, msg.sender, amount);
    }

    /// @inheritdoc IHub
    function depositWithPermit(address consumer, uint256 amount, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external
        nonReentrant
    {
        if (amount == 0) revert HubZeroAmount();
        try IERC20Permit(address(_token)).permit(consumer, address(this), amount, deadline, v, r, s) {}
        catch {
            // Someone may have submitted this very permit to the token first: go on only if it is the
            // consumer's permit for this hub and amount, already used, and its allowance is still there.
            if (!_permitWasUsed(consumer, amount, deadline, v, r, s)) revert HubPermitFailed(consumer);
        }
        _deposit(consumer, consumer, amount);
    }

    /// @inheritdoc IHub
    function requestExit(uint256 amount) external nonReentrant {
        if (amount == 0) revert HubZeroAmount();
        uint256 balance = _consumers[msg.sender].balance;
        if (amount > balance) revert HubInsufficientBalance(msg.sender, balance, amount);
        uint64 readyAt = uint64(block.timestamp) + _exitDelay;
        _exits[msg.sender] = ExitRequest({amount: uint128(amount), readyAt: readyAt});
        emit ExitRequested(msg.sender, amount, readyAt);
    }

    /// @inheritdoc IHub
    function cancelExit() external nonReentrant {
        if (_exits[msg.sender].readyAt == 0) revert HubNoExitPending(msg.sender);
        delete _exits[msg.sender];
        emit ExitCancelled(msg.sender);
    }

    /// @inheritdoc IHub
    function finalizeExit() external nonReentrant returns (uint256 amount) {
        ExitRequest memory request = _exits[msg.sender];
        if (request.readyAt == 0) revert HubNoExitPending(msg.sender);
        if (block.timestamp < request.readyAt) revert HubExitNotReady(msg.sender, request.readyAt);
        ConsumerChannel storage channel = _consumers[msg.sender];
        // The hub may have settled promises during the timelock: pay what is left, up to the request.
        amount = request.amount < channel.balance ? request.amount : channel.balance;
        delete _exits[msg.sender];
        channel.balance -= uint128(amount);
        emit ExitFinalized(msg.sender, amount);
        if (amount > 0) _token.safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IHub
    function instantExit(uint256 amount, uint256 deadline, bytes calldata hubSignature) external nonReentrant {
        if (block.timestamp > deadline) revert HubSignatureExpired(deadline);
        if (amount == 0) revert HubZeroAmount();
        ConsumerChannel storage channel = _consumers[msg.sender];
        if (amount > channel.balance) revert HubInsufficientBalance(msg.sender, channel.balance, amount);
        uint256 nonce = _useNonce(msg.sender);
        bytes32 digest = _hashTypedDataV4(TypedData.hashInstantExit(msg.sender, amount, nonce, deadline));
        _requireSigner(digest, hubSignature, _config.operator);
        channel.balance -= uint128(amount);
        emit InstantExited(msg.sender, amount, nonce);
        _token.safeTransfer(msg.sender, amount);
    }

    // ---------------------------------------------------------------- settlement

    /// @inheritdoc IHub
    function settleConsumer(ConsumerClaim calldata claim) external nonReentrant returns (uint256 amount) {
        amount = _settleConsumer(_domainSeparatorV4(), claim, true);
        _freeFunds += amount.toUint128();
    }

    /// @inheritdoc IHub
    function settleConsumers(ConsumerClaim[] calldata claims) external nonReentrant returns (uint256 amount) {
        bytes32 separator = _domainSeparatorV4();
        for (uint256 i; i < claims.length; ++i) {
            amount += _settleConsumer(separator, claims[i], false);
        }
        _freeFunds += amount.toUint128();
    }

    /// @inheritdoc IHub
    function settleProvider(ProviderClaim calldata claim) external nonReentrant returns (uint256 payout) {
        payout = _settleOneProvider(claim);
    }

    /// @inheritdoc IHub
    function settleProviders(ProviderClaim[] calldata claims) external nonReentrant returns (uint256 payout) {
        SettlementContext memory context = _settlementContext();
        Payout[] memory payouts = new Payout[](claims.length);
        uint256 outflow;
        uint256 relayerFees;
        for (uint256 i; i < claims.length; ++i) {
            Payout memory entry = _settleProvider(context, claims[i], false);
            payouts[i] = entry;
            outflow += entry.amount + entry.relayerFee;
            relayerFees += entry.relayerFee;
        }
        _payOut(outflow);
        for (uint256 i; i < payouts.length; ++i) {
            Payout memory entry = payouts[i];
            if (entry.amount > 0) {
                payout += entry.amount;
                _token.safeTransfer(entry.beneficiary, entry.amount);
            }
        }
        if (relayerFees > 0) _token.safeTransfer(msg.sender, relayerFees);
    }

    /// @inheritdoc IHub
    function settleProviderWithBeneficiary(
        ProviderClaim calldata claim,
        address beneficiary,
        bytes calldata beneficiarySignature
    ) external nonReentrant returns (uint256 payout) {
        _registry.setBeneficiaryFor(claim.provider, beneficiary, beneficiarySignature);
        payout = _settleOneProvider(claim);
    }

    // ---------------------------------------------------------------- operator

    /// @inheritdoc IHub
    function increaseStake(uint256 amount) external nonReentrant onlyOperator {
        if (amount == 0) revert HubZeroAmount();
        HubStatus stored = _config.status;
        if (stored != HubStatus.Active && stored != HubStatus.Closing) revert HubInvalidStatus(stored);
        _token.safeTransferFrom(msg.sender, address(this), amount);
        uint256 newStake = _stake + amount;
        _stake = newStake.toUint128();
        emit StakeIncreased(amount, newStake);
        uint256 owed = _stakeOwed;
        if (owed > 0) {
            owed = amount >= owed ? 0 : owed - amount;
            _stakeOwed = uint128(owed);
            if (owed == 0) emit HubPunishmentEnded(newStake);
        }
    }

    /// @inheritdoc IHub
    function decreaseStake(uint256 amount) external nonReentrant onlyOperator {
        if (amount == 0) revert HubZeroAmount();
        if (_stakeOwed > 0) revert HubInvalidStatus(HubStatus.Punished);
        uint256 current = _stake;
        if (amount > current) revert HubInsufficientStake(current, amount);
        uint256 newStake = current - amount;
        if (newStake < _minStake) revert HubStakeBelowMinimum(newStake, _minStake);
        _stake = uint128(newStake);
        emit StakeDecreased(amount, newStake);
        _token.safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IHub
    function addFreeFunds(uint256 amount) external nonReentrant {
        if (amount == 0) revert HubZeroAmount();
        _token.safeTransferFrom(msg.sender, address(this), amount);
        uint256 free = _freeFunds + amount;
        _freeFunds = free.toUint128();
        emit FreeFundsAdded(msg.sender, amount, free);
    }

    /// @inheritdoc IHub
    function withdrawFreeFunds(address to, uint256 amount) external nonReentrant onlyOperator {
        if (to == address(0)) revert HubZeroAddress();
        if (amount == 0) revert HubZeroAmount();
        uint256 free = _freeFunds;
        if (amount > free) revert HubInsufficientFreeFunds(free, amount);
        _freeFunds = uint128(free - amount);
        emit FreeFundsWithdrawn(to, amount, free - amount);
        _token.safeTransfer(to, amount);
    }

    /// @inheritdoc IHub
    function scheduleFee(uint16 fee) external onlyOperator {
        if (fee > _maxFee) revert HubFeeTooHigh(fee, _maxFee);
        Config memory config_ = _config;
        if (config_.status == HubStatus.Closed) revert HubInvalidStatus(HubStatus.Closed);
        config_.fee = Fees.current(config_);
        config_.pendingFee = fee;
        config_.pendingFeeAt = uint48(block.timestamp + _feeDelay);
        _config = config_;
        emit FeeChangeScheduled(fee, config_.pendingFeeAt);
    }

    /// @inheritdoc IHub
    function setConsumersPaused(bool paused) external onlyOperator {
        _config.consumersPaused = paused;
        emit ConsumersPausedSet(paused);
    }

    /// @inheritdoc IHub
    function requestClose() external onlyOperator {
        // A punished hub must first put back what claims took from its stake.
        HubStatus current = status();
        if (current != HubStatus.Active) revert HubInvalidStatus(current);
        uint64 closesAt_ = uint64(block.timestamp) + _closeDelay;
        _config.status = HubStatus.Closing;
        _closesAt = closesAt_;
        emit CloseRequested(closesAt_);
    }

    /// @inheritdoc IHub
    function close() external nonReentrant onlyOperator {
        HubStatus stored = _config.status;
        if (stored != HubStatus.Closing) revert HubInvalidStatus(stored);
        if (block.timestamp < _closesAt) revert HubCloseNotReady(_closesAt);
        uint256 amount = uint256(_stake) + _freeFunds;
        _stake = 0;
        _freeFunds = 0;
        _config.status = HubStatus.Closed;
        emit HubClosed(msg.sender, amount);
        if (amount > 0) _token.safeTransfer(msg.sender, amount);
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc IHub
    function registry() external view returns (address) {
        return address(_registry);
    }

    /// @inheritdoc IHub
    function token() external view returns (address) {
        return address(_token);
    }

    /// @inheritdoc IHub
    function config() external view returns (Config memory) {
        return _config;
    }

    /// @inheritdoc IHub
    function operator() external view returns (address) {
        return _config.operator;
    }

    /// @inheritdoc IHub
    function status() public view returns (HubStatus) {
        HubStatus stored = _config.status;
        if (stored == HubStatus.Active && _stakeOwed > 0) return HubStatus.Punished;
        return stored;
    }

    /// @inheritdoc IHub
    function isPunished() external view returns (bool) {
        return _stakeOwed > 0;
    }

    /// @inheritdoc IHub
    function currentFee() external view returns (uint16) {
        return Fees.current(_config);
    }

    /// @inheritdoc IHub
    function stake() external view returns (uint256) {
        return _stake;
    }

    /// @inheritdoc IHub
    function stakeOwed() external view returns (uint256) {
        return _stakeOwed;
    }

    /// @inheritdoc IHub
    function freeFunds() external view returns (uint256) {
        return _freeFunds;
    }

    /// @inheritdoc IHub
    function closesAt() external view returns (uint256) {
        return _closesAt;
    }

    /// @inheritdoc IHub
    function consumerChannel(address consumer) external view returns (ConsumerChannel memory) {
        return _consumers[consumer];
    }

    /// @inheritdoc IHub
    function exitRequest(address consumer) external view returns (ExitRequest memory) {
        return _exits[consumer];
    }

    /// @inheritdoc IHub
    function providerSettled(address provider) external view returns (uint256) {
        return _providerSettled[provider];
    }

    /// @inheritdoc IHub
    function nonces(address consumer) public view override(IHub, Nonces) returns (uint256) {
        return super.nonces(consumer);
    }

    /// @inheritdoc IHub
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @inheritdoc IHub
    function parameters()
        external
        view
        returns (uint256 minStake, uint16 maxFee, uint64 exitDelay, uint64 feeDelay, uint64 closeDelay)
    {
        return (_minStake, _maxFee, _exitDelay, _feeDelay, _closeDelay);
    }

    // ---------------------------------------------------------------- internals

    function _deposit(address consumer, address payer, uint256 amount) private {
        if (amount == 0) revert HubZeroAmount();
        if (consumer == address(0)) revert HubZeroAddress();
        Config memory config_ = _config;
        if (config_.status != HubStatus.Active) revert HubNotAcceptingDeposits(config_.status);
        ConsumerChannel storage channel = _consumers[consumer];
        if (config_.consumersPaused && channel.balance == 0 && channel.settled == 0) {
            revert HubConsumersPaused(consumer);
        }
        _token.safeTransferFrom(payer, address(this), amount);
        uint256 balance = channel.balance + amount;
        channel.balance = balance.toUint128();
        emit Deposited(consumer, payer, amount, balance);
    }

    /// @dev Moves what a consumer promise still owes from the consumer's balance; the caller adds the
    /// returned amount to the free funds. With `strict` unset, a claim with nothing to settle returns 0.
    function _settleConsumer(bytes32 separator, ConsumerClaim calldata claim, bool strict)
        private
        returns (uint256 amount)
    {
        address consumer = claim.consumer;
        uint256 total = claim.total;
        bytes32 digest = MessageHashUtils.toTypedDataHash(
            separator, TypedData.hashConsumerPromise(consumer, total, claim.preimage, claim.agreementHash)
        );
        _requireSigner(digest, claim.signature, consumer);

        ConsumerChannel memory channel = _consumers[consumer];
        if (total <= channel.settled) {
            if (strict) revert HubConsumerPromiseStale(consumer, total, channel.settled);
            return 0;
        }
        if (channel.balance == 0) {
            if (strict) revert HubConsumerBalanceEmpty(consumer);
            return 0;
        }
        // An underfunded channel pays what it holds; `settled` advances by what was paid, so the rest
        // of the same promise can be collected after a new deposit.
        amount = total - channel.settled;
        if (amount > channel.balance) amount = channel.balance;
        channel.balance -= uint128(amount);
        channel.settled = (channel.settled + amount).toUint128();
        _consumers[consumer] = channel;
        emit ConsumerSettled(consumer, total, amount, claim.preimage);
    }

    function _settleOneProvider(ProviderClaim calldata claim) private returns (uint256 payout) {
        Payout memory entry = _settleProvider(_settlementContext(), claim, true);
        _payOut(entry.amount + entry.relayerFee);
        payout = entry.amount;
        if (payout > 0) _token.safeTransfer(entry.beneficiary, payout);
        if (entry.relayerFee > 0) _token.safeTransfer(msg.sender, entry.relayerFee);
    }

    function _settlementContext() private view returns (SettlementContext memory context) {
        Config memory config_ = _config;
        context = SettlementContext({
            separator: _domainSeparatorV4(),
            operator: config_.operator,
            fee: Fees.current(config_)
        });
    }

    /// @dev Checks a hub promise and records it as settled; the caller then takes the outflow from
    /// the hub's funds ({_payOut}) and only after that moves the tokens. With `strict` unset, a stale
    /// claim returns an empty payout.
    function _settleProvider(SettlementContext memory context, ProviderClaim calldata claim, bool strict)
        private
        returns (Payout memory entry)
    {
        address provider = claim.provider;
        bytes32 promiseHash = TypedData.hashHubPromise(provider, claim.total, claim.preimage);
        _requireSigner(
            MessageHashUtils.toTypedDataHash(context.separator, promiseHash), claim.hubSignature, context.operator
        );
        uint256 settled = _providerSettled[provider];
        if (claim.total <= settled) {
            if (strict) revert HubProviderPromiseStale(provider, claim.total, settled);
            return entry;
        }
        uint256 amount = claim.total - settled;
        uint256 hubFee = Fees.amountOf(amount, context.fee);
        entry.relayerFee = claim.relayerFee;
        if (entry.relayerFee > 0) _requireRelayerFee(context.separator, claim, promiseHash, amount - hubFee);
        _providerSettled[provider] = claim.total;
        entry.beneficiary = _registry.beneficiaryOf(provider);
        entry.amount = amount - hubFee - entry.relayerFee;
        emit ProviderSettled(provider, claim.total, amount, hubFee, entry.relayerFee, claim.preimage);
    }

    /// @dev A relayer fee must fit in the provider's payout `net` and carry the provider's consent naming
    /// the caller as the relayer, so that no one else can submit the same claim first and take the fee.
    function _requireRelayerFee(bytes32 separator, ProviderClaim calldata claim, bytes32 promiseHash, uint256 net)
        private
        view
    {
        if (claim.relayerFee > net) revert HubRelayerFeeTooHigh(claim.relayerFee, net);
        bytes32 structHash = TypedData.hashAuthorization(promiseHash, claim.relayerFee, msg.sender);
        _requireSigner(MessageHashUtils.toTypedDataHash(separator, structHash), claim.providerSignature, claim.provider);
    }

    /// @dev Takes `outflow` from the free funds, and what they lack from the stake, punishing the hub.
    function _payOut(uint256 outflow) private {
        uint256 free = _freeFunds;
        if (outflow <= free) {
            // Cannot underflow: checked just above.
            unchecked {
                _freeFunds = uint128(free - outflow);
            }
            return;
        }
        uint256 fromStake = outflow - free;
        uint256 stake_ = _stake;
        if (fromStake > stake_) revert HubInsufficientFunds(outflow, free + stake_);
        uint256 owed = _stakeOwed + fromStake;
        _freeFunds = 0;
        _stake = uint128(stake_ - fromStake);
        _stakeOwed = owed.toUint128();
        emit HubPunished(fromStake, stake_ - fromStake, owed);
    }

    /// @dev Whether (v, r, s) is `consumer`'s EIP-2612 permit of `amount` to this hub with the nonce
    /// just before its current one, and the allowance it granted still covers `amount`.
    function _permitWasUsed(address consumer, uint256 amount, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        private
        view
        returns (bool)
    {
        IERC20Permit permitToken = IERC20Permit(address(_token));
        uint256 nonce = permitToken.nonces(consumer);
        if (nonce == 0 || _token.allowance(consumer, address(this)) < amount) return false;
        bytes32 structHash = keccak256(abi.encode(_PERMIT_TYPEHASH, consumer, address(this), amount, nonce - 1, deadline));
        (address signer,,) =
            ECDSA.tryRecover(MessageHashUtils.toTypedDataHash(permitToken.DOMAIN_SEPARATOR(), structHash), v, r, s);
        return signer == consumer;
    }

    function _requireSigner(bytes32 digest, bytes calldata signature, address expected) private pure {
        address recovered = Signatures.recover(digest, signature);
        if (recovered != expected || recovered == address(0)) revert HubInvalidSignature(expected, recovered);
    }

    function _requireSigner(bytes32 digest, CompactSignature calldata signature, address expected) private pure {
        address recovered = Signatures.recover(digest, signature);
        if (recovered != expected || recovered == address(0)) revert HubInvalidSignature(expected, recovered);
    }
}
