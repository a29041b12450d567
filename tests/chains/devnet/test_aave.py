"""The Aave V3 market: real risk parameters, borrowers near the edge, an oracle we move, a real liquidation."""

from __future__ import annotations

import pytest

from chains.devnet.deploy import derived_account
from chains.devnet.world import BORROWER_TEMPLATES
from chains.node.anvil import RpcCallError
from tests.fixtures.devnet import Devnet

WAD = 10**18


def health(dn: Devnet, user: str) -> int:
    return int(dn.call(dn.book.aave.pool, "Pool", "getUserAccountData", user)[5])


def test_reserves_configured_like_mainnet(devnet: Devnet) -> None:
    aave = devnet.book.aave
    assert {"WETH", "USDC", "WBTC", "DAI"} <= set(aave.reserves)
    (registered,) = devnet.call(aave.addresses_provider, "PoolAddressesProvider", "getPriceOracle")
    assert registered == aave.oracle
    (dp,) = devnet.call(aave.addresses_provider, "PoolAddressesProvider", "getPoolDataProvider")
    assert dp == aave.pool_data_provider
    for sym, r in aave.reserves.items():
        cfg = devnet.call(
            aave.pool_data_provider, "AaveProtocolDataProvider", "getReserveConfigurationData", r.asset
        )
        decimals, ltv, lt, bonus, _rf, collateral, borrowing, _stable, active, frozen = cfg
        assert (decimals, ltv, lt, bonus) == (
            r.decimals,
            r.ltv_bps,
            r.liquidation_threshold_bps,
            r.liquidation_bonus_bps,
        ), sym
        assert collateral and borrowing and active and not frozen
        a_tok, stable, variable = devnet.call(
            aave.pool_data_provider, "AaveProtocolDataProvider", "getReserveTokensAddresses", r.asset
        )
        assert (a_tok, stable, variable) == (r.a_token, r.stable_debt_token, r.variable_debt_token)
        (price,) = devnet.call(aave.oracle, "PriceOracle", "getAssetPrice", r.asset)
        assert price == round(devnet.book.token(sym).usd_price * 1e8)
    assert aave.reserves["WETH"].ltv_bps == 8050 and aave.reserves["WETH"].liquidation_threshold_bps == 8300


def test_borrowers_sit_just_above_liquidation(devnet: Devnet) -> None:
    aave = devnet.book.aave
    assert len(aave.borrowers) == len(BORROWER_TEMPLATES) >= 3
    assert aave.borrowers[0] == derived_account(devnet.book.seed, "aave-borrower", 0)
    for user in aave.borrowers:
        _coll, debt, *_ = devnet.call(
            aave.pool, "Pool", "getUserAccountData", user, block=devnet.book.deployed_at_block
        )
        hf = devnet.call(aave.pool, "Pool", "getUserAccountData", user, block=devnet.book.deployed_at_block)[
            5
        ]
        assert debt > 0
        assert 1.02 * WAD <= hf <= 1.15 * WAD, (user, hf / WAD)


def test_oracle_move_makes_borrower_liquidatable_and_liquidation_succeeds(devnet_state: Devnet) -> None:
    dn, book = devnet_state, devnet_state.book
    aave = book.aave
    assert BORROWER_TEMPLATES[0].collateral == (("WETH", 1.0),) and BORROWER_TEMPLATES[0].debt == "USDC"
    user = aave.borrowers[0]
    weth, usdc = book.weth, book.token("USDC").address
    liquidator = dn.node.accounts()[5]
    assert liquidator not in book.traders and liquidator != book.deployer
    dn.transact(liquidator, usdc, "MintableERC20", "mint(uint256)", 10**6 * 10**6)
    dn.transact(liquidator, usdc, "MintableERC20", "approve", aave.pool, 2**256 - 1)
    debt_before = dn.call(
        aave.pool_data_provider, "AaveProtocolDataProvider", "getUserReserveData", usdc, user
    )[2]
    to_cover = debt_before // 2

    # Healthy: the real Pool refuses to liquidate.
    assert health(dn, user) > WAD
    with pytest.raises(RpcCallError):
        dn.node.rpc(
            "eth_call", [{"from": liquidator, "to": aave.pool, "data": _liq(weth, usdc, user, to_cover)}]
        )

    (price,) = dn.call(aave.oracle, "PriceOracle", "getAssetPrice", weth)
    new_price = price * 88 // 100
    assert int(
        dn.transact(book.deployer, aave.oracle, "PriceOracle", "setAssetPrice", weth, new_price)["status"], 16
    )
    assert health(dn, user) < WAD

    weth_before = dn.balance(weth, liquidator)
    rcpt = dn.transact(liquidator, aave.pool, "Pool", "liquidationCall", weth, usdc, user, to_cover, False)
    assert int(rcpt["status"], 16) == 1
    seized = dn.balance(weth, liquidator) - weth_before
    # Collateral seized = debt covered (in USD) x liquidation bonus, at the new oracle price.
    bonus = aave.reserves["WETH"].liquidation_bonus_bps
    expected = (
        to_cover * 10**12 * 10**8 * bonus // 10_000 // new_price
    )  # USDC(6) -> 18 decimals, 1 USDC = 1e8
    assert abs(seized - expected) <= expected // 10_000
    debt_after = dn.call(
        aave.pool_data_provider, "AaveProtocolDataProvider", "getUserReserveData", usdc, user
    )[2]
    # Repaid to_cover; the rest of the difference is the interest accrued over the one block, and the debt token
    # burns a scaled amount (rayDiv then rayMul, half-up), which can move the balance by one more wei.
    assert to_cover - to_cover // 10**6 <= debt_before - debt_after <= to_cover + 1


def test_short_eth_borrower_liquidatable_when_eth_rises(devnet_state: Devnet) -> None:
    dn, book = devnet_state, devnet_state.book
    idx = next(
        i for i, t in enumerate(BORROWER_TEMPLATES) if t.debt == "WETH" and t.collateral[0][0] == "USDC"
    )
    user = book.aave.borrowers[idx]
    assert health(dn, user) > WAD
    (price,) = dn.call(book.aave.oracle, "PriceOracle", "getAssetPrice", book.weth)
    dn.transact(
        book.deployer, book.aave.oracle, "PriceOracle", "setAssetPrice", book.weth, price * 115 // 100
    )
    assert health(dn, user) < WAD


def _liq(collateral: str, debt: str, user: str, amount: int) -> str:
    from chains.devnet.artifacts import load

    return load("Pool").encode_call("liquidationCall", collateral, debt, user, amount, False)
