// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @title ChitToken
/// @notice The payment token: a plain ERC-20 with EIP-2612 permit and a fixed supply minted once.
contract ChitToken is ERC20, ERC20Permit {
    /// @param name_ Token name.
    /// @param symbol_ Token symbol.
    /// @param holder Receives the whole supply.
    /// @param supply The fixed supply.
    constructor(string memory name_, string memory symbol_, address holder, uint256 supply)
        ERC20(name_, symbol_)
        ERC20Permit(name_)
    {
        _mint(holder, supply);
    }
}
