// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ArbExecutor} from "../src/ArbExecutor.sol";
import {TestBase} from "./Vm.sol";

/// Pure tests (no fork, no devnet): ownership and the callback guards, which must hold before anything runs.
contract ArbExecutorUnitTest is TestBase {
    ArbExecutor internal exec;
    address internal constant WETH = address(uint160(0xE1));
    address internal constant AAVE = address(uint160(0xAA));
    address internal constant ATTACKER = address(uint160(0xBAD));

    function setUp() public {
        exec = new ArbExecutor(address(this), WETH, AAVE);
    }

    receive() external payable {}

    function _plan() internal pure returns (bytes memory) {
        // own balance, 1 hop (a V2 hop WETH -> WETH through a dummy pair): never reached in these tests
        return abi.encodePacked(uint8(0), uint8(1), WETH, uint128(1), uint128(0), uint128(0),
            uint8(0), address(0x1234), WETH, uint16(30));
    }

    function test_nonOwnerCannotExecute() public {
        vm.prank(ATTACKER);
        try exec.execute(_plan()) {
            revert("non-owner executed");
        } catch (bytes memory err) {
            assertRevertSelector(err, ArbExecutor.NotOwner.selector, "execute by non-owner");
        }
    }

    function test_nonOwnerCannotWithdraw() public {
        vm.deal(address(exec), 1 ether);
        vm.prank(ATTACKER);
        try exec.withdrawEth(payable(ATTACKER), 1 ether) {
            revert("non-owner withdrew");
        } catch (bytes memory err) {
            assertRevertSelector(err, ArbExecutor.NotOwner.selector, "withdrawEth by non-owner");
        }
        vm.prank(ATTACKER);
        try exec.transferOwnership(ATTACKER) {
            revert("non-owner took ownership");
        } catch (bytes memory err) {
            assertRevertSelector(err, ArbExecutor.NotOwner.selector, "transferOwnership by non-owner");
        }
    }

    function test_ownerWithdrawsEth() public {
        vm.deal(address(exec), 3 ether);
        uint256 before = address(this).balance;
        exec.withdrawEth(payable(address(this)), 2 ether);
        assertEq(address(this).balance - before, 2 ether, "withdrawn");
        assertEq(address(exec).balance, 1 ether, "left");
    }

    function test_uniswapV2CallRejectedOutsideARun() public {
        vm.prank(ATTACKER);
        try exec.uniswapV2Call(address(exec), 1e18, 0, _plan()) {
            revert("uniswapV2Call accepted");
        } catch (bytes memory err) {
            assertRevertSelector(err, ArbExecutor.UnexpectedCaller.selector, "uniswapV2Call");
        }
    }

    function test_uniswapV3SwapCallbackRejectedOutsideARun() public {
        vm.prank(ATTACKER);
        try exec.uniswapV3SwapCallback(1e18, -1e18, "") {
            revert("uniswapV3SwapCallback accepted");
        } catch (bytes memory err) {
            assertRevertSelector(err, ArbExecutor.UnexpectedCaller.selector, "uniswapV3SwapCallback");
        }
    }

    function test_uniswapV3FlashCallbackRejectedOutsideARun() public {
        vm.prank(ATTACKER);
        try exec.uniswapV3FlashCallback(0, 0, _plan()) {
            revert("uniswapV3FlashCallback accepted");
        } catch (bytes memory err) {
            assertRevertSelector(err, ArbExecutor.UnexpectedCaller.selector, "uniswapV3FlashCallback");
        }
    }

    function test_executeOperationRejectsStrangersAndTheAavePoolOutsideARun() public {
        vm.prank(ATTACKER);
        try exec.executeOperation(WETH, 1e18, 0, address(exec), _plan()) {
            revert("executeOperation accepted from a stranger");
        } catch (bytes memory err) {
            assertRevertSelector(err, ArbExecutor.UnexpectedCaller.selector, "executeOperation (stranger)");
        }
        // Even the real lending pool is refused when we did not ask it for a loan.
        vm.prank(AAVE);
        try exec.executeOperation(WETH, 1e18, 0, address(exec), _plan()) {
            revert("executeOperation accepted outside a run");
        } catch (bytes memory err) {
            assertRevertSelector(err, ArbExecutor.UnexpectedCaller.selector, "executeOperation (pool, no run)");
        }
    }

    function test_badPlansRevertCleanly() public {
        try exec.execute(hex"00") {
            revert("short plan accepted");
        } catch (bytes memory err) {
            assertRevertSelector(err, ArbExecutor.BadPlan.selector, "short plan");
        }
        bytes memory p = _plan();
        p[0] = bytes1(uint8(9)); // unknown funding mode
        try exec.execute(p) {
            revert("bad mode accepted");
        } catch (bytes memory err) {
            assertRevertSelector(err, ArbExecutor.BadPlan.selector, "bad mode");
        }
    }
}
