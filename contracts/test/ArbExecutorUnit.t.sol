// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ArbExecutor} from "../src/ArbExecutor.sol";
import {TestBase, Vm} from "./Vm.sol";

/// Pure tests (no fork, no devnet): ownership and the callback guards, which must hold before anything runs.
contract ArbExecutorUnitTest is TestBase {
    ArbExecutor internal exec;
    address internal constant WETH = address(uint160(0xE1));
    address internal constant AAVE = address(uint160(0xAA));
    address internal constant ATTACKER = address(uint160(0xBAD));
    address internal constant NEW_OWNER = address(uint160(0xB0B));

    bytes32 internal constant TRANSFER_STARTED = keccak256("OwnershipTransferStarted(address,address)");
    bytes32 internal constant TRANSFERRED = keccak256("OwnershipTransferred(address,address)");

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

    // ------------------------------------------------------------------------------------ ownership (two-step)
    function _onlyLog(bytes32 topic0, address a, address b, string memory what) internal {
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 1, string.concat(what, ": one event"));
        assertEqAddr(logs[0].emitter, address(exec), string.concat(what, ": emitter"));
        assertEq(logs[0].topics.length, 3, string.concat(what, ": topics"));
        assertTrue(logs[0].topics[0] == topic0, string.concat(what, ": event"));
        assertEqAddr(address(uint160(uint256(logs[0].topics[1]))), a, string.concat(what, ": previous owner"));
        assertEqAddr(address(uint160(uint256(logs[0].topics[2]))), b, string.concat(what, ": new owner"));
    }

    function test_ownershipTransferIsTwoStep() public {
        vm.recordLogs();
        exec.transferOwnership(NEW_OWNER);
        _onlyLog(TRANSFER_STARTED, address(this), NEW_OWNER, "OwnershipTransferStarted");
        assertEqAddr(exec.owner(), address(this), "owner unchanged until accepted");
        assertEqAddr(exec.pendingOwner(), NEW_OWNER, "pending owner");

        // Nobody but the pending owner can accept, the current owner included.
        vm.prank(ATTACKER);
        try exec.acceptOwnership() { revert("a stranger accepted"); }
        catch (bytes memory err) {
            assertRevertData(err, abi.encodeWithSelector(ArbExecutor.NotPendingOwner.selector, ATTACKER), "stranger");
        }
        try exec.acceptOwnership() { revert("the old owner accepted"); }
        catch (bytes memory err) { assertRevertSelector(err, ArbExecutor.NotPendingOwner.selector, "old owner"); }

        vm.recordLogs();
        vm.prank(NEW_OWNER);
        exec.acceptOwnership();
        _onlyLog(TRANSFERRED, address(this), NEW_OWNER, "OwnershipTransferred");
        assertEqAddr(exec.owner(), NEW_OWNER, "new owner");
        assertEqAddr(exec.pendingOwner(), address(0), "pending cleared");

        // The old owner is out; the new one cannot accept twice.
        try exec.transferOwnership(address(this)) { revert("old owner still in charge"); }
        catch (bytes memory err) { assertRevertSelector(err, ArbExecutor.NotOwner.selector, "old owner"); }
        try exec.execute(_plan()) { revert("old owner executed"); }
        catch (bytes memory err) { assertRevertSelector(err, ArbExecutor.NotOwner.selector, "old owner execute"); }
        vm.prank(NEW_OWNER);
        try exec.acceptOwnership() { revert("accepted twice"); }
        catch (bytes memory err) { assertRevertSelector(err, ArbExecutor.NotPendingOwner.selector, "twice"); }
    }

    function test_pendingOwnerCanBeReplacedBeforeAccepting() public {
        exec.transferOwnership(ATTACKER); // a typo ...
        exec.transferOwnership(NEW_OWNER); // ... corrected before it was accepted
        vm.prank(ATTACKER);
        try exec.acceptOwnership() { revert("replaced pending owner accepted"); }
        catch (bytes memory err) { assertRevertSelector(err, ArbExecutor.NotPendingOwner.selector, "replaced"); }
        vm.prank(NEW_OWNER);
        exec.acceptOwnership();
        assertEqAddr(exec.owner(), NEW_OWNER, "new owner");
    }

    function test_zeroAddressOwnerRefused() public {
        try exec.transferOwnership(address(0)) { revert("transfer to zero accepted"); }
        catch (bytes memory err) { assertRevertSelector(err, ArbExecutor.ZeroAddress.selector, "transfer to 0"); }
        assertEqAddr(exec.owner(), address(this), "owner kept");
        try new ArbExecutor(address(0), WETH, AAVE) { revert("deployed without an owner"); }
        catch (bytes memory err) { assertRevertSelector(err, ArbExecutor.ZeroAddress.selector, "constructor"); }
        vm.recordLogs();
        ArbExecutor fresh = new ArbExecutor(NEW_OWNER, WETH, AAVE);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 1, "constructor: one event");
        assertTrue(logs[0].topics[0] == TRANSFERRED, "constructor: OwnershipTransferred");
        assertEqAddr(address(uint160(uint256(logs[0].topics[2]))), NEW_OWNER, "constructor: owner");
        assertEqAddr(fresh.owner(), NEW_OWNER, "constructor owner");
    }

    // ------------------------------------------------------------------------------------ withdrawals, tip rule
    function test_withdrawTokenRefusesAnAddressWithoutCode() public {
        // A low-level transfer call to an EOA "succeeds" and moves nothing: refuse it instead of lying.
        address eoa = address(uint160(0xE0A));
        try exec.withdrawToken(eoa, address(this), 1 ether) { revert("withdrew a token that does not exist"); }
        catch (bytes memory err) {
            assertRevertData(err, abi.encodeWithSelector(ArbExecutor.NotAContract.selector, eoa), "EOA token");
        }
    }

    function test_tipNeedsAWethStartToken() public {
        // The tip is unwrapped WETH out of the start token's profit: a plan starting with another token cannot
        // carry one (it would be paid from elsewhere and not counted against minProfit).
        address other = address(uint160(0x70CE));
        bytes memory p = abi.encodePacked(uint8(0), uint8(1), other, uint128(1), uint128(0), uint128(1),
            uint8(0), address(0x1234), other, uint16(30));
        try exec.execute(p) { revert("tip with a non-WETH start token accepted"); }
        catch (bytes memory err) {
            assertRevertData(err, abi.encodeWithSelector(ArbExecutor.TipNotInWeth.selector, other), "non-WETH tip");
        }
    }
}
