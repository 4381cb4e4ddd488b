// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @title TestToken
/// @notice The payment token for local networks and tests: anyone may mint.
contract TestToken is ERC20, ERC20Permit {
    constructor() ERC20("Chit Test Token", "tCHIT") ERC20Permit("Chit Test Token") {}

    /// @notice Mints `amount` to `to`.
    /// @param to Recipient.
    /// @param amount Tokens to mint.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Mints 1,000 tokens to the caller.
    function faucet() external {
        _mint(msg.sender, 1_000 ether);
    }
}
