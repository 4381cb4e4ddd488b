// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @notice An EIP-2098 compact signature: `r`, and `s` with the recovery bit (v - 27) in its top bit.
/// @dev 64 bytes of fixed-size calldata instead of a 65-byte dynamic `bytes`, which keeps batches of
/// claims cheap. The format cannot carry a high-s twin of a signature (its `s` needs the bit that
/// holds the parity), and a high `s` that does fit is rejected when recovering.
struct CompactSignature {
    bytes32 r;
    bytes32 vs;
}
