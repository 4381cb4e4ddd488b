// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @title ReentrantToken
/// @notice A malicious token that calls back into a target on every transfer, to test that the
/// hub's reentrancy guards hold.
contract ReentrantToken is ERC20, ERC20Permit {
    address public attackTarget;
    bytes public payload;
    bool public lastCallSucceeded;
    bytes public lastReturnData;
    bool private _attacking;

    constructor() ERC20("Reentrant", "RE") ERC20Permit("Reentrant") {}

    /// @notice Mints `amount` to `to`.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Arms the attack: every later transfer calls `target` with `payload` once.
    function arm(address target_, bytes calldata payload_) external {
        attackTarget = target_;
        payload = payload_;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (attackTarget != address(0) && !_attacking) {
            _attacking = true;
            // solhint-disable-next-line avoid-low-level-calls
            (lastCallSucceeded, lastReturnData) = attackTarget.call(payload);
            _attacking = false;
        }
    }
}
