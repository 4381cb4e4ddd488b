// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {IRegistry} from "./interfaces/IRegistry.sol";
import {IHub} from "./interfaces/IHub.sol";
import {Hub} from "./Hub.sol";
import {Fees} from "./libraries/Fees.sol";
import {Signatures} from "./libraries/Signatures.sol";

/// @title Registry
/// @notice The directory of hubs and identities. See {IRegistry}.
/// @dev Deploys the Hub implementation in its constructor, so the implementation's immutables
/// (token, registry, shared parameters) are fixed for every clone.
contract Registry is IRegistry, EIP712, Nonces, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice `RegisterIdentity(address identity,address beneficiary,uint256 relayerFee,address relayer,uint256 nonce)`.
    bytes32 public constant REGISTER_IDENTITY_TYPEHASH = keccak256(
        "RegisterIdentity(address identity,address beneficiary,uint256 relayerFee,address relayer,uint256 nonce)"
    );
    /// @notice `SetBeneficiary(address identity,address beneficiary,uint256 nonce)`.
    bytes32 public constant SET_BENEFICIARY_TYPEHASH =
        keccak256("SetBeneficiary(address identity,address beneficiary,uint256 nonce)");

    IERC20 private immutable _token;
    address private immutable _hubImplementation;
    uint256 private immutable _minStake;
    uint16 private immutable _maxFee;
    uint64 private immutable _exitDelay;
    uint64 private immutable _feeDelay;
    uint64 private immutable _closeDelay;

    address[] private _hubs;
    mapping(address operator => address hub) private _hubOf;
    mapping(address hub => string url) private _urls;
    mapping(address hub => address operator) private _operatorOf;
    mapping(address identity => address beneficiary) private _beneficiaries;

    /// @param token_ The token every hub holds.
    /// @param parameters_ Minimum stake, fee cap and delays shared by every hub.
    constructor(IERC20 token_, Parameters memory parameters_) EIP712("Chit Registry", "1") {
        if (address(token_) == address(0)) revert RegistryZeroAddress();
        if (parameters_.maxFee > Fees.BPS) revert RegistryInvalidParameters("maxFee above 10000");
        if (parameters_.minStake == 0) revert RegistryInvalidParameters("minStake is zero");
        if (parameters_.exitDelay == 0) revert RegistryInvalidParameters("exitDelay is zero");
        if (parameters_.feeDelay == 0) revert RegistryInvalidParameters("feeDelay is zero");
        if (parameters_.closeDelay == 0) revert RegistryInvalidParameters("closeDelay is zero");
        _token = token_;
        _minStake = parameters_.minStake;
        _maxFee = parameters_.maxFee;
        _exitDelay = parameters_.exitDelay;
        _feeDelay = parameters_.feeDelay;
        _closeDelay = parameters_.closeDelay;
        _hubImplementation = address(new Hub(token_, parameters_));
    }

    // ---------------------------------------------------------------- hubs

    /// @inheritdoc IRegistry
    function registerHub(uint256 stake, uint16 fee, string calldata url) external nonReentrant returns (address hub) {
        if (stake < _minStake) revert RegistryStakeTooLow(stake, _minStake);
        if (fee > _maxFee) revert RegistryFeeTooHigh(fee, _maxFee);
        if (bytes(url).length == 0) revert RegistryEmptyUrl();
        address existing = _hubOf[msg.sender];
        if (existing != address(0)) revert RegistryHubAlreadyRegistered(msg.sender, existing);

        hub = Clones.cloneDeterministic(_hubImplementation, _salt(msg.sender));
        _hubOf[msg.sender] = hub;
        _operatorOf[hub] = msg.sender;
        _urls[hub] = url;
        _hubs.push(hub);
        emit HubRegistered(msg.sender, hub, stake, fee, url);

        _token.safeTransferFrom(msg.sender, hub, stake);
        IHub(hub).initialize(msg.sender, fee, stake);
    }

    /// @inheritdoc IRegistry
    function updateHubUrl(string calldata url) external {
        address hub = _hubOf[msg.sender];
        if (hub == address(0)) revert RegistryHubNotRegistered(msg.sender);
        if (bytes(url).length == 0) revert RegistryEmptyUrl();
        _urls[hub] = url;
        emit HubUrlUpdated(msg.sender, hub, url);
    }

    // ---------------------------------------------------------------- identities

    /// @inheritdoc IRegistry
    function registerIdentity(address beneficiary) external {
        // Direct actions use up a nonce too, so a signature the identity handed out earlier cannot
        // undo them later.
        _useNonce(msg.sender);
        _register(msg.sender, beneficiary, 0);
    }

    /// @inheritdoc IRegistry
    /// @dev The signed `relayer` is `msg.sender`, so that no one else can submit the same registration
    /// first and take the fee.
    function registerIdentityFor(address identity, address beneficiary, uint256 relayerFee, bytes calldata signature)
        external
        nonReentrant
    {
        bytes32 structHash = keccak256(
            abi.encode(REGISTER_IDENTITY_TYPEHASH, identity, beneficiary, relayerFee, msg.sender, _useNonce(identity))
        );
        _requireSigner(structHash, signature, identity);
        _register(identity, beneficiary, relayerFee);
        if (relayerFee > 0) _token.safeTransferFrom(identity, msg.sender, relayerFee);
    }

    /// @inheritdoc IRegistry
    function setBeneficiary(address beneficiary) external {
        _useNonce(msg.sender);
        _setBeneficiary(msg.sender, beneficiary);
    }

    /// @inheritdoc IRegistry
    function setBeneficiaryFor(address identity, address beneficiary, bytes calldata signature) external {
        bytes32 structHash = keccak256(abi.encode(SET_BENEFICIARY_TYPEHASH, identity, beneficiary, _useNonce(identity)));
        _requireSigner(structHash, signature, identity);
        _setBeneficiary(identity, beneficiary);
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc IRegistry
    function token() external view returns (address) {
        return address(_token);
    }

    /// @inheritdoc IRegistry
    function hubImplementation() external view returns (address) {
        return _hubImplementation;
    }

    /// @inheritdoc IRegistry
    function parameters() external view returns (Parameters memory) {
        return Parameters({
            minStake: _minStake,
            maxFee: _maxFee,
            exitDelay: _exitDelay,
            feeDelay: _feeDelay,
            closeDelay: _closeDelay
        });
    }

    /// @inheritdoc IRegistry
    function hubOf(address operator) external view returns (address) {
        return _hubOf[operator];
    }

    /// @inheritdoc IRegistry
    function predictHubAddress(address operator) external view returns (address) {
        return Clones.predictDeterministicAddress(_hubImplementation, _salt(operator));
    }

    /// @inheritdoc IRegistry
    function isHub(address hub) external view returns (bool) {
        return _operatorOf[hub] != address(0);
    }

    /// @inheritdoc IRegistry
    function hubCount() external view returns (uint256) {
        return _hubs.length;
    }

    /// @inheritdoc IRegistry
    function listHubs(uint256 offset, uint256 limit) external view returns (HubRecord[] memory records) {
        uint256 count = _hubs.length;
        if (offset >= count) return records;
        uint256 end = count - offset < limit ? count : offset + limit;
        records = new HubRecord[](end - offset);
        for (uint256 i = offset; i < end; ++i) {
            address hub = _hubs[i];
            records[i - offset] = HubRecord({hub: hub, operator: _operatorOf[hub], url: _urls[hub]});
        }
    }

    /// @inheritdoc IRegistry
    function isRegistered(address identity) external view returns (bool) {
        return _beneficiaries[identity] != address(0);
    }

    /// @inheritdoc IRegistry
    function beneficiaryOf(address identity) external view returns (address) {
        address beneficiary = _beneficiaries[identity];
        return beneficiary == address(0) ? identity : beneficiary;
    }

    /// @inheritdoc IRegistry
    function nonces(address identity) public view override(IRegistry, Nonces) returns (uint256) {
        return super.nonces(identity);
    }

    /// @inheritdoc IRegistry
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ---------------------------------------------------------------- internals

    function _register(address identity, address beneficiary, uint256 relayerFee) private {
        if (_beneficiaries[identity] != address(0)) revert RegistryIdentityAlreadyRegistered(identity);
        // An identity without a beneficiary is paid itself; storing it marks the identity registered.
        address payee = beneficiary == address(0) ? identity : beneficiary;
        _beneficiaries[identity] = payee;
        emit IdentityRegistered(identity, payee, msg.sender, relayerFee);
    }

    function _setBeneficiary(address identity, address beneficiary) private {
        if (beneficiary == address(0)) revert RegistryZeroAddress();
        if (_beneficiaries[identity] == address(0)) revert RegistryIdentityNotRegistered(identity);
        _beneficiaries[identity] = beneficiary;
        emit BeneficiaryChanged(identity, beneficiary);
    }

    function _requireSigner(bytes32 structHash, bytes calldata signature, address identity) private view {
        address recovered = Signatures.recover(_hashTypedDataV4(structHash), signature);
        if (recovered != identity || recovered == address(0)) revert RegistryInvalidSignature(identity, recovered);
    }

    function _salt(address operator) private pure returns (bytes32) {
        return bytes32(uint256(uint160(operator)));
    }
}
