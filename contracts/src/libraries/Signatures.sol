// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {CompactSignature} from "../types/CompactSignature.sol";

/// @title Signatures
/// @notice Recovers EIP-712 signers without reverting, so each contract reports a bad signature with
/// its own typed error.
library Signatures {
    /// @notice The signer of `digest`, or the zero address for a signature that is malformed, of the
    /// wrong length or malleable (high s).
    /// @param digest The EIP-712 digest.
    /// @param signature A 65-byte (r, s, v) signature.
    /// @return signer The recovered signer or zero.
    function recover(bytes32 digest, bytes calldata signature) internal pure returns (address signer) {
        (signer,,) = ECDSA.tryRecover(digest, signature);
    }

    /// @notice The signer of `digest` from an EIP-2098 compact signature, or the zero address for a
    /// malformed or malleable (high s) one.
    /// @param digest The EIP-712 digest.
    /// @param signature The compact signature.
    /// @return signer The recovered signer or zero.
    function recover(bytes32 digest, CompactSignature calldata signature) internal pure returns (address signer) {
        (signer,,) = ECDSA.tryRecover(digest, signature.r, signature.vs);
    }
}
