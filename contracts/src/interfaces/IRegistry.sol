// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title IRegistry
/// @notice The directory of hubs and identities. Creates each operator's Hub as an EIP-1167 clone and
/// keeps each identity's beneficiary, the address its earnings are paid to. Everything an identity
/// does can be relayed: it signs EIP-712, and a relayer submits (a registration, which pays its relayer,
/// only the relayer it names; a beneficiary change, anyone).
interface IRegistry {
    /// @notice A registered hub as the Registry lists it.
    /// @param hub The hub contract.
    /// @param operator The operator who runs it.
    /// @param url Where its service answers.
    struct HubRecord {
        address hub;
        address operator;
        string url;
    }

    /// @notice Parameters shared by every hub of this Registry.
    /// @param minStake The minimum stake of an active hub.
    /// @param maxFee The fee cap in basis points.
    /// @param exitDelay Seconds a consumer waits between requesting and finalizing an exit.
    /// @param feeDelay Seconds before a scheduled fee change takes effect.
    /// @param closeDelay Seconds between requesting to close a hub and closing it.
    struct Parameters {
        uint256 minStake;
        uint16 maxFee;
        uint64 exitDelay;
        uint64 feeDelay;
        uint64 closeDelay;
    }

    /// @notice The stake `stake` is below the minimum `minStake`.
    error RegistryStakeTooLow(uint256 stake, uint256 minStake);
    /// @notice The fee `fee` basis points is above the cap `maxFee`.
    error RegistryFeeTooHigh(uint256 fee, uint256 maxFee);
    /// @notice `operator` already runs `hub`.
    error RegistryHubAlreadyRegistered(address operator, address hub);
    /// @notice `operator` runs no hub.
    error RegistryHubNotRegistered(address operator);
    /// @notice The URL is empty.
    error RegistryEmptyUrl();
    /// @notice `identity` is already registered.
    error RegistryIdentityAlreadyRegistered(address identity);
    /// @notice `identity` is not registered.
    error RegistryIdentityNotRegistered(address identity);
    /// @notice The zero address was given where an account is needed.
    error RegistryZeroAddress();
    /// @notice A signature did not come from `identity`; it recovered to `recovered`.
    error RegistryInvalidSignature(address identity, address recovered);
    /// @notice The parameters are unusable: `reason` says which.
    error RegistryInvalidParameters(string reason);

    /// @notice `operator` registered `hub` with `stake`, `fee` basis points and `url`.
    event HubRegistered(address indexed operator, address indexed hub, uint256 stake, uint256 fee, string url);
    /// @notice The hub of `operator` now answers at `url`.
    event HubUrlUpdated(address indexed operator, address indexed hub, string url);
    /// @notice `identity` registered with `beneficiary`; `relayer` was paid `relayerFee` for submitting it.
    event IdentityRegistered(address indexed identity, address indexed beneficiary, address relayer, uint256 relayerFee);
    /// @notice The earnings of `identity` are now paid to `beneficiary`.
    event BeneficiaryChanged(address indexed identity, address indexed beneficiary);

    /// @notice Registers the caller as a hub operator: moves `stake` from the caller (after `approve`)
    /// into a new Hub clone and lists it.
    /// @param stake The stake, at least the minimum.
    /// @param fee The hub fee in basis points, at most the cap.
    /// @param url Where the hub's service answers.
    /// @return hub The new hub.
    function registerHub(uint256 stake, uint16 fee, string calldata url) external returns (address hub);

    /// @notice Changes the URL of the caller's hub.
    /// @param url The new URL.
    function updateHubUrl(string calldata url) external;

    /// @notice Registers the caller as an identity paying out to `beneficiary`. Uses up the caller's
    /// nonce, like {setBeneficiary}.
    /// @param beneficiary Where the identity's earnings go; the zero address means the identity itself.
    function registerIdentity(address beneficiary) external;

    /// @notice Registers `identity` with its EIP-712 `RegisterIdentity` signature naming the caller as
    /// `relayer`; the caller may be paid `relayerFee` tokens from `identity` (which must have approved the
    /// Registry, for example with an EIP-2612 permit).
    /// @param identity The identity.
    /// @param beneficiary Where the identity's earnings go; the zero address means the identity itself.
    /// @param relayerFee Tokens from `identity` to the caller.
    /// @param signature The identity's signature. The relayer is not an argument: it is `msg.sender`, so
    /// a registration submitted by anyone else than the relayer it names fails its signature check.
    function registerIdentityFor(address identity, address beneficiary, uint256 relayerFee, bytes calldata signature)
        external;

    /// @notice Sets the caller's beneficiary. Uses up the caller's nonce, which voids any signed
    /// registration or beneficiary change it handed out and that was not submitted yet.
    /// @param beneficiary The new payout address.
    function setBeneficiary(address beneficiary) external;

    /// @notice Sets the beneficiary of `identity` with its EIP-712 `SetBeneficiary` signature; anyone
    /// may submit it, each signature once.
    /// @param identity The identity.
    /// @param beneficiary The new payout address.
    /// @param signature The identity's signature.
    function setBeneficiaryFor(address identity, address beneficiary, bytes calldata signature) external;

    /// @notice The token every hub of this Registry holds.
    /// @return The token.
    function token() external view returns (address);

    /// @notice The implementation every hub clone delegates to.
    /// @return The implementation.
    function hubImplementation() external view returns (address);

    /// @notice Parameters shared by every hub.
    /// @return The parameters.
    function parameters() external view returns (Parameters memory);

    /// @notice The hub of `operator`, or the zero address.
    /// @param operator The operator.
    /// @return The hub.
    function hubOf(address operator) external view returns (address);

    /// @notice Where the hub of `operator` will be (or is) deployed.
    /// @param operator The operator.
    /// @return The hub address.
    function predictHubAddress(address operator) external view returns (address);

    /// @notice Whether `hub` was created by this Registry.
    /// @param hub The address to check.
    /// @return True for a hub of this Registry.
    function isHub(address hub) external view returns (bool);

    /// @notice The number of registered hubs.
    /// @return The count.
    function hubCount() external view returns (uint256);

    /// @notice A page of registered hubs in registration order.
    /// @param offset Index of the first hub.
    /// @param limit Most hubs to return.
    /// @return records The hubs.
    function listHubs(uint256 offset, uint256 limit) external view returns (HubRecord[] memory records);

    /// @notice Whether `identity` is registered.
    /// @param identity The identity.
    /// @return True once registered.
    function isRegistered(address identity) external view returns (bool);

    /// @notice Where the earnings of `identity` go: its beneficiary, or itself when it has none.
    /// @param identity The identity.
    /// @return The payout address.
    function beneficiaryOf(address identity) external view returns (address);

    /// @notice The next nonce of `identity` for its signed registration and beneficiary changes.
    /// @param identity The identity.
    /// @return The nonce.
    function nonces(address identity) external view returns (uint256);

    /// @notice The EIP-712 domain separator of this Registry.
    /// @return The domain separator.
    function domainSeparator() external view returns (bytes32);
}
