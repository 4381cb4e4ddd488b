// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IHub} from "../interfaces/IHub.sol";

/// @title Fees
/// @notice The hub fee schedule: a fee in basis points that changes only after a delay.
library Fees {
    /// @notice Basis points in one whole.
    uint256 internal constant BPS = 10_000;

    /// @notice The fee in force now under `config`.
    /// @param config The hub's configuration.
    /// @return The fee in basis points.
    function current(IHub.Config memory config) internal view returns (uint16) {
        if (config.pendingFeeAt != 0 && block.timestamp >= config.pendingFeeAt) return config.pendingFee;
        return config.fee;
    }

    /// @notice The fee of `fee` basis points on `amount`, rounded down in the provider's favour.
    /// @param amount The amount settled.
    /// @param fee The fee in basis points, at most {BPS}.
    /// @return The fee in tokens.
    function amountOf(uint256 amount, uint16 fee) internal pure returns (uint256) {
        return (amount * fee) / BPS;
    }
}
