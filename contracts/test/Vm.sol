// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// The few forge cheatcodes our tests use (forge-std is not available offline; npm's copy needs ds-test).
interface Vm {
    struct Log {
        bytes32[] topics;
        bytes data;
        address emitter;
    }

    function envAddress(string calldata name) external view returns (address);
    function deal(address who, uint256 newBalance) external;
    function prank(address sender) external;
    function coinbase(address newCoinbase) external;
    function label(address account, string calldata newLabel) external;
    function recordLogs() external;
    function getRecordedLogs() external returns (Log[] memory);
}

/// Minimal assertions: a failing `require` fails the forge test with its message.
abstract contract TestBase {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    function assertEq(uint256 a, uint256 b, string memory what) internal pure {
        if (a != b) revert(string.concat(what, ": ", _str(a), " != ", _str(b)));
    }

    function assertGe(uint256 a, uint256 b, string memory what) internal pure {
        if (a < b) revert(string.concat(what, ": ", _str(a), " < ", _str(b)));
    }

    function assertEqAddr(address a, address b, string memory what) internal pure {
        if (a != b) revert(string.concat(what, ": ", _str(uint160(a)), " != ", _str(uint160(b))));
    }

    function assertTrue(bool ok, string memory what) internal pure {
        if (!ok) revert(what);
    }

    /// The revert data must start with `selector` (a custom error of the contract under test).
    function assertRevertSelector(bytes memory err, bytes4 selector, string memory what) internal pure {
        if (err.length < 4 || bytes4(err) != selector) revert(string.concat(what, ": unexpected revert data"));
    }

    /// The revert data must be exactly `expected` (a custom error with its arguments: abi.encodeWithSelector).
    function assertRevertData(bytes memory err, bytes memory expected, string memory what) internal pure {
        if (keccak256(err) != keccak256(expected)) revert(string.concat(what, ": unexpected revert data"));
    }

    function _str(uint256 v) internal pure returns (string memory) {
        if (v == 0) return "0";
        bytes memory b;
        while (v != 0) {
            b = abi.encodePacked(bytes1(uint8(48 + v % 10)), b);
            v /= 10;
        }
        return string(b);
    }
}
