"""Deploy the devnet world onto an anvil: tokens, Uniswap V2 (two venues), Uniswap V3, an Aave V3 market.

Entry point: :func:`deploy_world`. Everything is the real bytecode from the npm packages (see
:mod:`chains.devnet.artifacts`); what is deployed, and how deep, is planned in :mod:`chains.devnet.world`.

How it is fast and deterministic (a fresh anvil deploys in ~2-3 s):

* automine is switched **off** for the duration and each phase is mined as one block (``evm_mine``) after its
  transactions were sent with explicit nonces, so CREATE/CREATE2 addresses are computed before mining;
* the block gas limit is raised during deployment so a phase fits one block, and block timestamps advance
  by exactly 1 s per block, so everything time-dependent (Aave interest indexes, V2 cumulative prices) is the
  same on every run with the same seed;
* on return the node's automine mode, block gas limit and timestamp behaviour are restored to what they were
  — so a node handed over to the block builder afterwards (automine off) behaves as it expects.

Accounts: dev account 0 deploys and owns all pool liquidity; ``book.traders`` are dev accounts 10..29 (or
the upper half when the node has fewer than 12 accounts), funded with WETH and every token and with
approvals given to both V2 routers and the V3 SwapRouter. Aave suppliers and borrowers are *derived*
addresses (no keys; impersonated during deployment only), so they never collide with the accounts that bots
and tests use; a liquidator is any funded account.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from chains.addressbook import (
    AaveMarket,
    AaveReserve,
    AddressBook,
    PoolInfo,
    TokenInfo,
    V2Venue,
    V3Deployment,
)
from chains.devnet import world as W
from chains.devnet.artifacts import Artifact, create2_address, load, load_library
from chains.devnet.txbatch import DeployError, JsonRpc, TxBatcher
from chains.kinds import PoolKind
from chains.node.anvil import AnvilNode

__all__ = ["V2_INIT_CODE_HASH", "V3_INIT_CODE_HASH", "DeployError", "deploy_world", "derived_account"]

V2_INIT_CODE_HASH = "0x96e8ac4277198ff8b6f785478aa9a39f403cb768dd02cbee326c3e7da348845f"
V3_INIT_CODE_HASH = "0xe34f199b19b2b4f47f68442619d555527d244f78a3297ea89325f843f87b8b54"
MAX_UINT = 2**256 - 1
DEADLINE = 2**64  # far future; router/NPM deadlines only need to be >= block.timestamp
ZERO = "0x0000000000000000000000000000000000000000"
AAVE_ARTIFACTS = "@aave/core-v3/artifacts"

TRADER_START = 10
MAX_TRADERS = 20
N_SUPPLIERS = 3
DEPLOY_GAS_LIMIT = 2_000_000_000  # block gas limit while deploying (restored afterwards)
TRADER_WETH = 1_000 * 10**18
TRADER_TOKEN_USD = 2_000_000.0
DEPLOYER_ETH = 10**9 * 10**18
DEPLOYER_WETH = 2 * 10**6 * 10**18

Progress = Callable[[str], None]


def derived_account(seed: int, role: str, index: int) -> str:
    """A keyless, seed-derived address (Aave suppliers/borrowers); only usable through impersonation."""
    return to_checksum_address(keccak(text=f"mevsuite-devnet:{seed}:{role}:{index}")[12:])


def _units(usd: float, token: W.TokenSpec) -> int:
    return int(usd / token.usd * 10**token.decimals)


@dataclass
class _Deployer:
    node: AnvilNode
    seed: int
    progress: Progress
    rpc: JsonRpc
    tx: TxBatcher
    deployer: str
    traders: list[str]
    tokens: dict[str, TokenInfo] = field(default_factory=dict)
    v2: dict[str, V2Venue] = field(default_factory=dict)
    v3: V3Deployment | None = None
    pools: list[PoolInfo] = field(default_factory=list)
    aave: AaveMarket | None = None
    started: float = field(default_factory=time.monotonic)

    # ---------------------------------------------------------------- helpers
    def say(self, msg: str) -> None:
        self.progress(f"[{time.monotonic() - self.started:5.2f}s] {msg}")

    def send(
        self, sender: str, to: str, art: str, fn: str, *args: Any, value: int = 0, gas: int | None = None
    ) -> str:
        return self.tx.send(
            sender, to, load(art).encode_call(fn, *args), value=value, gas=gas, label=f"{art}.{fn}"
        )

    def deploy(self, art: Artifact | str, *args: Any, libraries: dict[str, str] | None = None) -> str:
        a = load(art) if isinstance(art, str) else art
        return self.tx.deploy(
            self.deployer, a.init_code(*args, libraries=libraries), label=f"deploy {a.name}"
        )

    def view(self, to: str, art: str, fn: str, *args: Any) -> tuple[Any, ...]:
        a = load(art)
        return a.decode_output(fn, self.tx.call(to, a.encode_call(fn, *args)), len(args))

    def addr(self, symbol: str) -> str:
        return self.tokens[symbol].address

    def mint(self, symbol: str, to: str, amount: int) -> None:
        """Give ``to`` ``amount`` of a token, by whatever means that token offers."""
        spec = W.TOKEN_BY_SYMBOL[symbol]
        if spec.kind == "weth":
            # Wrapping needs ETH in the *recipient's* hands; the deployer wraps and transfers.
            self.send(self.deployer, self.addr(symbol), "WETH9", "transfer", to, amount)
        elif spec.kind == "fee_on_transfer":
            self.send(self.deployer, self.addr(symbol), "DeflatingERC20", "transfer", to, amount)
        elif spec.kind == "reverting":
            self.send(self.deployer, self.addr(symbol), "ERC20PresetMinterPauser", "mint", to, amount)
        else:
            self.send(self.deployer, self.addr(symbol), "MintableERC20", "mint(address,uint256)", to, amount)

    # ---------------------------------------------------------------- phases
    def deploy_tokens(self) -> None:
        self.say("tokens: WETH9, 7 ERC20s, a fee-on-transfer and a pausable token")
        for spec in W.TOKENS:
            if spec.kind == "weth":
                address = self.deploy("WETH9")
            elif spec.kind == "fee_on_transfer":
                address = self.deploy("DeflatingERC20", 10**12 * 10**18)
            elif spec.kind == "reverting":
                address = self.deploy("ERC20PresetMinterPauser", spec.name, spec.symbol)
            else:
                address = self.deploy("MintableERC20", spec.name, spec.symbol, spec.decimals)
            self.tokens[spec.symbol] = TokenInfo(spec.symbol, address, spec.decimals, spec.kind, spec.usd)

    def deploy_dexes(self) -> None:
        self.say("Uniswap V2 x2 (uniswap, sushiswap), Uniswap V3 factory/SwapRouter/QuoterV2/NPM/TickLens")
        weth = self.addr("WETH")
        pair = load("UniswapV2Pair")
        if pair.init_code_hash() != V2_INIT_CODE_HASH:
            raise DeployError(f"V2 pair init code hash {pair.init_code_hash()} is not mainnet's")
        for venue in ("uniswap", "sushiswap"):
            factory = self.deploy("UniswapV2Factory", self.deployer)
            router = self.deploy("UniswapV2Router02", factory, weth)
            self.v2[venue] = V2Venue(venue, factory, router, V2_INIT_CODE_HASH, 30)
        if load("UniswapV3Pool").init_code_hash() != V3_INIT_CODE_HASH:
            raise DeployError("V3 pool init code hash is not mainnet's")
        factory = self.deploy("UniswapV3Factory")
        # The 1-bip tier is not enabled by the factory's constructor (it was added by governance on mainnet).
        self.send(self.deployer, factory, "UniswapV3Factory", "enableFeeAmount", 100, 1)
        self.v3 = V3Deployment(
            factory=factory,
            swap_router=self.deploy("SwapRouter", factory, weth),
            quoter_v2=self.deploy("QuoterV2", factory, weth),
            position_manager=self.deploy("NonfungiblePositionManager", factory, weth, ZERO),
            tick_lens=self.deploy("TickLens"),
            init_code_hash=V3_INIT_CODE_HASH,
        )

    def deploy_libraries(self, root: Artifact, done: dict[str, str]) -> dict[str, str]:
        """Deploy (once each, dependencies first) every library ``root`` links; returns name -> address."""
        for src, lib in root.libraries():
            if lib in done:
                continue
            art = load_library(AAVE_ARTIFACTS, src, lib)
            self.deploy_libraries(art, done)  # e.g. FlashLoanLogic itself links BorrowLogic
            done[lib] = self.deploy(art, libraries=done)
        return done

    def deploy_aave_core(self) -> tuple[str, str, str, str]:
        self.say(
            "Aave V3: addresses provider, ACL, logic libraries, Pool, PoolConfigurator, oracle, data provider"
        )
        d = self.deployer
        provider = self.deploy("PoolAddressesProvider", "mevsuite-devnet", d)
        # ACLManager's constructor requires the ACL admin to be set in the provider first.
        self.send(d, provider, "PoolAddressesProvider", "setACLAdmin", d)
        acl = self.deploy("ACLManager", provider)
        self.send(d, provider, "PoolAddressesProvider", "setACLManager", acl)
        self.send(d, acl, "ACLManager", "addPoolAdmin", d)
        libs: dict[str, str] = {}
        pool_impl = self.deploy("Pool", provider, libraries=self.deploy_libraries(load("Pool"), libs))
        self.send(
            d, provider, "PoolAddressesProvider", "setPoolImpl", pool_impl
        )  # creates + initializes the proxy
        conf_impl = self.deploy(
            "PoolConfigurator", libraries=self.deploy_libraries(load("PoolConfigurator"), libs)
        )
        self.send(d, provider, "PoolAddressesProvider", "setPoolConfiguratorImpl", conf_impl)
        oracle = self.deploy("PriceOracle")
        self.send(d, provider, "PoolAddressesProvider", "setPriceOracle", oracle)
        data_provider = self.deploy("AaveProtocolDataProvider", provider)
        self.send(d, provider, "PoolAddressesProvider", "setPoolDataProvider", data_provider)
        return provider, acl, oracle, data_provider

    def fund(self) -> None:
        self.say(f"funding: deployer liquidity, {len(self.traders)} traders (WETH, tokens, router approvals)")
        d = self.deployer
        weth = self.addr("WETH")
        assert self.v3 is not None
        self.send(d, weth, "WETH9", "deposit", value=DEPLOYER_WETH, gas=100_000)
        for spec in W.TOKENS:
            if spec.kind == "standard":
                self.mint(spec.symbol, d, _units(5e9, spec))
            elif spec.kind == "reverting":
                self.mint(spec.symbol, d, _units(1e8, spec))
        spenders = [v.router for v in self.v2.values()] + [self.v3.swap_router]
        for spec in W.TOKENS:
            self.send(
                d, self.addr(spec.symbol), "MintableERC20", "approve", self.v3.position_manager, MAX_UINT
            )
        for trader in self.traders:
            self.send(trader, weth, "WETH9", "deposit", value=TRADER_WETH, gas=100_000)
            for spec in W.TOKENS:
                if spec.kind != "weth":
                    self.mint(spec.symbol, trader, _units(TRADER_TOKEN_USD, spec))
                for spender in spenders:
                    self.send(
                        trader,
                        self.addr(spec.symbol),
                        "MintableERC20",
                        "approve",
                        spender,
                        MAX_UINT,
                        gas=100_000,
                    )

    def seed_v2(self) -> None:
        self.say("Uniswap V2 pairs on both venues")
        d = self.deployer
        for venue_name, venue in self.v2.items():
            for spec in W.V2_PAIRS:
                tvl = spec.tvl_usd.get(venue_name)
                if tvl is None:
                    continue
                r = W.rng(self.seed, f"v2:{venue_name}:{spec.name}")
                stable = spec.a in W.STABLES and spec.b in W.STABLES
                jitter = r.uniform(-0.0005, 0.0005) if stable else r.uniform(-0.004, 0.004)
                ta, tb = W.TOKEN_BY_SYMBOL[spec.a], W.TOKEN_BY_SYMBOL[spec.b]
                amount_a = _units(tvl / 2, ta)
                amount_b = int(_units(tvl / 2, tb) * (1 + jitter))
                a_addr, b_addr = self.addr(spec.a), self.addr(spec.b)
                (t0, a0), (t1, a1) = sorted(
                    [(a_addr, amount_a), (b_addr, amount_b)], key=lambda x: int(x[0], 16)
                )
                pair = create2_address(
                    venue.factory, keccak(bytes.fromhex(t0[2:] + t1[2:])), V2_INIT_CODE_HASH
                )
                self.send(d, venue.factory, "UniswapV2Factory", "createPair", a_addr, b_addr, gas=5_000_000)
                self.send(d, t0, "MintableERC20", "transfer", pair, a0, gas=200_000)
                self.send(d, t1, "MintableERC20", "transfer", pair, a1, gas=200_000)
                self.send(d, pair, "UniswapV2Pair", "mint", d, gas=300_000)
                self.pools.append(PoolInfo(venue_name, PoolKind.V2, pair, t0, t1, 30))

    def seed_v3(self) -> None:
        self.say("Uniswap V3 pools (fee tiers 100/500/3000/10000) with concentrated positions")
        assert self.v3 is not None
        d = self.deployer
        target_l = float(W.reference()["weth_usdc_v3_005_active_liquidity"]["value"])
        for spec in W.V3_POOLS:
            r = W.rng(self.seed, f"v3:{spec.name}")
            jitter = r.uniform(-0.0003, 0.0003) if spec.stable else r.uniform(-0.004, 0.004)
            a_addr, b_addr = self.addr(spec.a), self.addr(spec.b)
            s0, s1 = (spec.a, spec.b) if int(a_addr, 16) < int(b_addr, 16) else (spec.b, spec.a)
            t0, t1 = self.addr(s0), self.addr(s1)
            price = W.raw_price(s0, s1, jitter)
            spacing = W.TICK_SPACING[spec.fee]
            pool = create2_address(
                self.v3.factory,
                keccak(bytes.fromhex(t0[2:].rjust(64, "0") + t1[2:].rjust(64, "0") + f"{spec.fee:064x}")),
                V3_INIT_CODE_HASH,
            )
            self.send(d, self.v3.factory, "UniswapV3Factory", "createPool", t0, t1, spec.fee, gas=6_000_000)
            self.send(d, pool, "UniswapV3Pool", "initialize", W.sqrt_price_x96(price), gas=200_000)
            sqrt_p = math.sqrt(price)
            tok0, tok1 = W.TOKEN_BY_SYMBOL[s0], W.TOKEN_BY_SYMBOL[s1]
            plans: list[tuple[int, int, float]] = []
            for shape in W.STABLE_SHAPE if spec.stable else W.VOLATILE_SHAPE:
                if shape.lower == 0.0:
                    lo = W.align(W.MIN_TICK, spacing, up=True)
                    hi = W.align(W.MAX_TICK, spacing, up=False)
                else:
                    # Widths vary by +-20 % with the seed, so each seed has its own tick layout.
                    k = r.uniform(0.8, 1.2)
                    lo = W.align(W.price_to_tick(price * (1 - (1 - shape.lower) * k)), spacing, up=False)
                    hi = W.align(W.price_to_tick(price * (1 + (shape.upper - 1) * k)), spacing, up=True)
                    if hi <= lo:
                        hi = lo + spacing
                a0, a1 = W.amounts_for_liquidity(sqrt_p, lo, hi, 1.0)
                usd_per_l = a0 * tok0.usd / 10**tok0.decimals + a1 * tok1.usd / 10**tok1.decimals
                plans.append((lo, hi, shape.share * spec.tvl_usd / usd_per_l))
            if spec.name == "WETH/USDC/500" and target_l > 0:
                # Calibrate the deepest pool's in-range liquidity to the real pool's median (reference.json).
                tick = W.price_to_tick(price)
                active = sum(liq for lo, hi, liq in plans if lo <= tick < hi)
                plans = [(lo, hi, liq * target_l / active) for lo, hi, liq in plans]
            for lo, hi, liq in plans:
                a0, a1 = W.amounts_for_liquidity(sqrt_p, lo, hi, liq)
                params = (
                    t0,
                    t1,
                    spec.fee,
                    lo,
                    hi,
                    int(a0 * 1.000001) + 1,
                    int(a1 * 1.000001) + 1,
                    0,
                    0,
                    d,
                    DEADLINE,
                )
                self.send(
                    d, self.v3.position_manager, "NonfungiblePositionManager", "mint", params, gas=1_000_000
                )
            self.pools.append(PoolInfo("uniswap_v3", PoolKind.V3, pool, t0, t1, spec.fee, spacing))

    def pause_reverting_token(self) -> None:
        # Paused only now: the pair and traders are already seeded, from here on every transfer reverts.
        self.send(self.deployer, self.addr("PAUSE"), "ERC20PresetMinterPauser", "pause")

    def configure_aave(self, provider: str, acl: str, oracle: str, data_provider: str) -> None:
        self.say(
            "Aave V3: token implementations, rate strategies, initReserves, risk parameters, oracle prices"
        )
        d = self.deployer
        (pool,) = self.view(provider, "PoolAddressesProvider", "getPool")
        (configurator,) = self.view(provider, "PoolAddressesProvider", "getPoolConfigurator")
        a_impl = self.deploy("AToken", pool)
        s_impl = self.deploy("StableDebtToken", pool)
        v_impl = self.deploy("VariableDebtToken", pool)
        ref = W.reference()
        inputs = []
        for sym in W.AAVE_RESERVES:
            risk, slopes = ref["aave_risk_parameters"][sym], ref["aave_rate_slopes_ray"][sym]
            strategy = self.deploy(
                "DefaultReserveInterestRateStrategy",
                provider,
                risk["optimal_usage"] * 10**23,
                int(slopes["base"]),
                int(slopes["slope1"]),
                int(slopes["slope2"]),
                0,
                0,
                0,
                0,
                0,
            )
            tok = self.tokens[sym]
            inputs.append(
                (
                    a_impl,
                    s_impl,
                    v_impl,
                    tok.decimals,
                    strategy,
                    tok.address,
                    d,
                    ZERO,
                    f"Aave devnet {sym}",
                    f"a{sym}",
                    f"Aave devnet variable debt {sym}",
                    f"variableDebt{sym}",
                    f"Aave devnet stable debt {sym}",
                    f"stableDebt{sym}",
                    b"",
                )
            )
        self.send(d, configurator, "PoolConfigurator", "initReserves", inputs, gas=15_000_000)
        for sym in W.AAVE_RESERVES:
            risk, asset = ref["aave_risk_parameters"][sym], self.addr(sym)
            self.send(
                d,
                configurator,
                "PoolConfigurator",
                "configureReserveAsCollateral",
                asset,
                risk["ltv"],
                risk["liquidation_threshold"],
                risk["liquidation_bonus"],
            )
            self.send(d, configurator, "PoolConfigurator", "setReserveBorrowing", asset, True)
            self.send(d, configurator, "PoolConfigurator", "setReserveFactor", asset, risk["reserve_factor"])
            # Aave V3 reserves start with flash loans off (error 91): the executor's flashLoanSimple needs them.
            self.send(d, configurator, "PoolConfigurator", "setReserveFlashLoaning", asset, True)
        for spec in W.TOKENS:  # every token has a USD price (8 decimals), reserves or not
            self.send(
                d, oracle, "PriceOracle", "setAssetPrice", self.addr(spec.symbol), round(spec.usd * 1e8)
            )
        self.tx.flush()
        reserves: dict[str, AaveReserve] = {}
        for sym in W.AAVE_RESERVES:
            a_tok, stable, variable = self.view(
                data_provider, "AaveProtocolDataProvider", "getReserveTokensAddresses", self.addr(sym)
            )
            risk = ref["aave_risk_parameters"][sym]
            reserves[sym] = AaveReserve(
                sym,
                self.addr(sym),
                to_checksum_address(a_tok),
                to_checksum_address(variable),
                to_checksum_address(stable),
                self.tokens[sym].decimals,
                risk["ltv"],
                risk["liquidation_threshold"],
                risk["liquidation_bonus"],
            )
        self.aave = AaveMarket(
            addresses_provider=provider,
            pool=to_checksum_address(pool),
            pool_configurator=to_checksum_address(configurator),
            acl_manager=acl,
            oracle=oracle,
            pool_data_provider=data_provider,
            reserves=reserves,
        )

    def _give(self, who: str, sym: str, amount: int) -> None:
        """Fund a derived (impersonated) account with ``amount`` of a reserve asset and approve the pool."""
        assert self.aave is not None
        if sym == "WETH":
            self.send(who, self.addr("WETH"), "WETH9", "deposit", value=amount, gas=100_000)
        else:
            self.mint(sym, who, amount)
        self.send(who, self.addr(sym), "MintableERC20", "approve", self.aave.pool, MAX_UINT, gas=100_000)

    def aave_positions(self) -> None:
        assert self.aave is not None
        self.say("Aave V3: suppliers, and borrowers close to their liquidation threshold")
        pool = self.aave.pool
        ref = W.reference()["aave_risk_parameters"]
        suppliers = [derived_account(self.seed, "aave-supplier", i) for i in range(N_SUPPLIERS)]
        for i, sym in enumerate(W.AAVE_RESERVES):
            who = suppliers[i % N_SUPPLIERS]
            amount = _units(W.AAVE_SUPPLY_USD[sym], W.TOKEN_BY_SYMBOL[sym])
            self._give(who, sym, amount)
            self.send(who, pool, "Pool", "supply", self.addr(sym), amount, who, 0, gas=500_000)
        self.tx.flush()
        borrowers: list[str] = []
        for i, tpl in enumerate(W.BORROWER_TEMPLATES):
            who = derived_account(self.seed, "aave-borrower", i)
            r = W.rng(self.seed, f"aave-borrower:{i}")
            value = math.exp(r.uniform(math.log(20_000), math.log(1_500_000)))
            lt = sum(w * ref[s]["liquidation_threshold"] for s, w in tpl.collateral) / 1e4
            ltv = sum(w * ref[s]["ltv"] for s, w in tpl.collateral) / 1e4
            # The lowest HF a borrow can reach is LT/LTV (borrowing is capped at the LTV); aim between that
            # (plus a margin for rounding) and 1.15, so a few-percent price move makes the user liquidatable.
            hf = r.uniform(max(1.02, lt / ltv * 1.006), 1.15)
            for sym, weight in tpl.collateral:
                amount = _units(value * weight, W.TOKEN_BY_SYMBOL[sym])
                self._give(who, sym, amount)
                self.send(who, pool, "Pool", "supply", self.addr(sym), amount, who, 0, gas=500_000)
            debt = _units(value * lt / hf, W.TOKEN_BY_SYMBOL[tpl.debt])
            self.send(who, pool, "Pool", "borrow", self.addr(tpl.debt), debt, 2, 0, who, gas=1_000_000)
            borrowers.append(who)
        self.tx.flush()
        for who in borrowers:
            data = self.view(pool, "Pool", "getUserAccountData", who)
            health = data[5] / 1e18
            if not 1.0 < health < 1.2:
                raise DeployError(f"borrower {who} has health factor {health:.4f}, outside (1.0, 1.2)")
        self.aave.borrowers = borrowers


def _restore(rpc: JsonRpc, impersonated: list[str], gas_limit: int, automine: bool, *, quiet: bool) -> None:
    """Put the node's settings back as :func:`deploy_world` found them."""
    try:
        for who in impersonated:
            rpc.call("anvil_stopImpersonatingAccount", [who])
        rpc.call("evm_setBlockGasLimit", [hex(gas_limit)])
        # One empty block with the restored gas limit: anvil's evm_revert re-reads the block environment from
        # the head block, so without it every revert to a post-deploy snapshot would bring back the raised limit.
        rpc.call("evm_mine")
        rpc.call("anvil_removeBlockTimestampInterval")
        rpc.call("evm_setAutomine", [automine])
    except Exception:
        if not quiet:
            raise
    finally:
        rpc.close()


def _pick_traders(accounts: list[str]) -> list[str]:
    if len(accounts) > TRADER_START + 1:
        return accounts[TRADER_START : TRADER_START + MAX_TRADERS]
    return accounts[max(1, len(accounts) // 2) :]


def deploy_world(node: AnvilNode, seed: int = 7, progress: Progress | None = None) -> AddressBook:
    """Deploy the whole devnet world onto ``node`` and return its address book.

    ``node`` should be a fresh anvil (the deployer's nonce fixes every address: same seed + fresh node =
    identical address book and state). The node's automine mode, block gas limit and timestamp behaviour are
    restored before returning, whatever they were; during deployment automine is off and each phase is one
    block.
    """
    say = progress or (lambda _msg: None)
    rpc = JsonRpc(node.http_url)
    tx = TxBatcher(rpc)
    accounts: list[str] = [to_checksum_address(a) for a in rpc.call("eth_accounts")]
    if len(accounts) < 2:
        raise DeployError("the node needs at least 2 unlocked accounts (deployer and a trader)")
    automine = bool(rpc.call("anvil_getAutomine"))
    latest = rpc.call("eth_getBlockByNumber", ["latest", False])
    gas_limit = int(latest["gasLimit"], 16)
    dep = _Deployer(node, seed, say, rpc, tx, accounts[0], _pick_traders(accounts))
    impersonated: list[str] = []
    try:
        rpc.call("evm_setAutomine", [False])
        rpc.call("evm_setBlockGasLimit", [hex(DEPLOY_GAS_LIMIT)])
        # One second per block from the current head: time-dependent state is then identical across runs.
        rpc.call("anvil_setBlockTimestampInterval", [1])
        rpc.call("anvil_setBalance", [dep.deployer, hex(DEPLOYER_ETH)])
        derived = [derived_account(seed, "aave-supplier", i) for i in range(N_SUPPLIERS)]
        derived += [derived_account(seed, "aave-borrower", i) for i in range(len(W.BORROWER_TEMPLATES))]
        for who in derived:
            rpc.call("anvil_impersonateAccount", [who])
            rpc.call("anvil_setBalance", [who, hex(10**8 * 10**18)])
            impersonated.append(who)
        dep.deploy_tokens()
        dep.deploy_dexes()
        core = dep.deploy_aave_core()
        tx.flush()
        dep.fund()
        tx.flush()
        dep.seed_v2()
        dep.seed_v3()
        dep.pause_reverting_token()
        tx.flush()
        dep.configure_aave(*core)
        dep.aave_positions()
        tx.flush()
    except BaseException:
        _restore(rpc, impersonated, gas_limit, automine, quiet=True)  # never mask the original error
        raise
    _restore(rpc, impersonated, gas_limit, automine, quiet=False)
    assert dep.v3 is not None and dep.aave is not None
    book = AddressBook(
        chain_id=int(rpc.call("eth_chainId"), 16),
        rpc_url=node.http_url,
        ws_url=node.ws_url,
        seed=seed,
        deployer=dep.deployer,
        weth=dep.addr("WETH"),
        tokens=dep.tokens,
        v2=dep.v2,
        v3=dep.v3,
        pools=dep.pools,
        aave=dep.aave,
        traders=dep.traders,
        deployed_at_block=int(rpc.call("eth_blockNumber"), 16),
    )
    rpc.close()
    say(
        f"[{time.monotonic() - dep.started:5.2f}s] done: {len(book.pools)} pools, {tx.sent} txs in {tx.blocks} blocks"
    )
    return book


def main() -> None:  # pragma: no cover - convenience for humans: python -m chains.devnet.deploy
    import sys

    node = AnvilNode.start(accounts=40)
    try:
        book = deploy_world(node, progress=lambda m: print(m, file=sys.stderr))
        print(book.to_json())
        print(f"anvil running at {node.http_url} (pid {node.pid}); Ctrl-C to stop", file=sys.stderr)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        node.stop()


if __name__ == "__main__":  # pragma: no cover
    main()
