// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @notice The lifecycle and solvency state of a hub.
/// @dev `Punished` is never stored: a hub reads as punished while claims have taken from its stake
/// more than the operator has put back.
enum HubStatus {
    /// The clone has not been initialized.
    Uninitialized,
    /// The hub takes deposits and settles.
    Active,
    /// A provider claim was paid from the stake; the operator must top it up.
    Punished,
    /// The operator asked to close; deposits stop, settlements go on until the close delay ends.
    Closing,
    /// Stake and free funds went back to the operator; consumers can still exit.
    Closed
}
