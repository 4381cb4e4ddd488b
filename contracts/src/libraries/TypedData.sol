// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title TypedData
/// @notice EIP-712 type hashes and struct hashes of every message a Hub verifies. The SDK exports the
/// same types; its test vectors check that both sides agree byte for byte.
/// @dev Claims carry the preimage R rather than the hashlock: the hashlock is `keccak256(R)`, so a
/// claim with the wrong R simply fails its signature check.
library TypedData {
    /// @notice `Agreement(address provider,bytes32 id,uint256 total)`: the invoice a consumer promise pays.
    bytes32 internal constant AGREEMENT_TYPEHASH = keccak256("Agreement(address provider,bytes32 id,uint256 total)");

    /// @notice The consumer's promise to the hub, bound to the agreement it pays.
    bytes32 internal constant CONSUMER_PROMISE_TYPEHASH = keccak256(
        "ConsumerPromise(address consumer,uint256 total,bytes32 hashlock,Agreement agreement)"
        "Agreement(address provider,bytes32 id,uint256 total)"
    );

    /// @notice The hub's promise to a provider, signed by the operator.
    bytes32 internal constant HUB_PROMISE_TYPEHASH =
        keccak256("HubPromise(address provider,uint256 total,bytes32 hashlock)");

    /// @notice The provider's consent to pay `relayerFee` to `relayer` for settling its hub promise.
    bytes32 internal constant SETTLEMENT_AUTHORIZATION_TYPEHASH = keccak256(
        "SettlementAuthorization(HubPromise hubPromise,uint256 relayerFee,address relayer)"
        "HubPromise(address provider,uint256 total,bytes32 hashlock)"
    );

    /// @notice The hub's co-signature of a consumer's instant exit.
    bytes32 internal constant INSTANT_EXIT_TYPEHASH =
        keccak256("InstantExit(address consumer,uint256 amount,uint256 nonce,uint256 deadline)");

    /// @notice The hashlock of `preimage`.
    /// @param preimage R.
    /// @return keccak256(R).
    function hashlock(bytes32 preimage) internal pure returns (bytes32) {
        return keccak256(abi.encode(preimage));
    }

    /// @notice The struct hash of a consumer promise whose hashlock is keccak256(`preimage`).
    /// @param consumer The consumer.
    /// @param total Its cumulative total.
    /// @param preimage R.
    /// @param agreementHash The struct hash of the agreement it pays.
    /// @return The struct hash.
    function hashConsumerPromise(address consumer, uint256 total, bytes32 preimage, bytes32 agreementHash)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(CONSUMER_PROMISE_TYPEHASH, consumer, total, hashlock(preimage), agreementHash));
    }

    /// @notice The struct hash of a hub promise whose hashlock is keccak256(`preimage`).
    /// @param provider The provider.
    /// @param total The cumulative total owed to it.
    /// @param preimage R.
    /// @return The struct hash.
    function hashHubPromise(address provider, uint256 total, bytes32 preimage) internal pure returns (bytes32) {
        return keccak256(abi.encode(HUB_PROMISE_TYPEHASH, provider, total, hashlock(preimage)));
    }

    /// @notice The struct hash of a provider's consent to a relayer fee.
    /// @param hubPromiseHash The struct hash of the hub promise being settled.
    /// @param relayerFee The fee.
    /// @param relayer The only account that may submit the claim and take the fee.
    /// @return The struct hash.
    function hashAuthorization(bytes32 hubPromiseHash, uint256 relayerFee, address relayer)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(SETTLEMENT_AUTHORIZATION_TYPEHASH, hubPromiseHash, relayerFee, relayer));
    }

    /// @notice The struct hash of an instant exit.
    /// @param consumer The consumer leaving.
    /// @param amount Tokens it takes out.
    /// @param nonce Its exit nonce.
    /// @param deadline Last valid timestamp.
    /// @return The struct hash.
    function hashInstantExit(address consumer, uint256 amount, uint256 nonce, uint256 deadline)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(INSTANT_EXIT_TYPEHASH, consumer, amount, nonce, deadline));
    }
}
