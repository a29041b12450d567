"""The devnet's address book: every deployed contract, token, pool and actor, as JSON.

`mevsuite devnet up` prints it and writes it to a file; bots, the traffic generator and tests read it.
``relay_url`` / ``mev_share_url`` name the local relay (:mod:`chains.devnet.relay`) when one runs.
Addresses are EIP-55 checksummed strings; amounts and parameters are ints.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

TokenKind = Literal["standard", "weth", "fee_on_transfer", "reverting"]
PoolKind = Literal["v2", "v3"]

FORMAT_VERSION = 1


@dataclass(slots=True)
class TokenInfo:
    symbol: str
    address: str
    decimals: int
    kind: TokenKind = "standard"
    usd_price: float = 0.0  # the reference price the pools were seeded at (analytics only, never amounts)


@dataclass(slots=True)
class V2Venue:
    name: str  # "uniswap" | "sushiswap"
    factory: str
    router: str
    init_code_hash: str
    fee_bps: int = 30


@dataclass(slots=True)
class V3Deployment:
    factory: str
    swap_router: str
    quoter_v2: str
    position_manager: str
    tick_lens: str
    init_code_hash: str


@dataclass(slots=True)
class PoolInfo:
    venue: str  # "uniswap" | "sushiswap" (v2) | "uniswap_v3"
    kind: PoolKind
    address: str
    token0: str
    token1: str
    fee: int  # v2: fee in bps (30); v3: fee in hundredths of a bip (500, 3000, 10000)
    tick_spacing: int = 0  # v3 only


@dataclass(slots=True)
class AaveReserve:
    symbol: str
    asset: str
    a_token: str
    variable_debt_token: str
    stable_debt_token: str
    decimals: int
    ltv_bps: int
    liquidation_threshold_bps: int
    liquidation_bonus_bps: int  # e.g. 10500 = 5 % bonus


@dataclass(slots=True)
class AaveMarket:
    addresses_provider: str
    pool: str
    pool_configurator: str
    acl_manager: str
    oracle: str  # the price oracle we control (setAssetPrice); prices in USD with 8 decimals
    pool_data_provider: str
    reserves: dict[str, AaveReserve] = field(default_factory=dict)
    borrowers: list[str] = field(default_factory=list)


@dataclass(slots=True)
class AddressBook:
    chain_id: int
    rpc_url: str
    ws_url: str
    seed: int
    deployer: str
    weth: str
    tokens: dict[str, TokenInfo]
    v2: dict[str, V2Venue]
    v3: V3Deployment
    pools: list[PoolInfo]
    aave: AaveMarket
    traders: list[str] = field(default_factory=list)  # unlocked dev accounts used by the traffic generator
    deployed_at_block: int = 0
    format_version: int = FORMAT_VERSION
    relay_url: str = ""  # the local Flashbots-compatible relay (JSON-RPC, POST); "" when none runs
    mev_share_url: str = ""  # its MEV-Share hint stream (server-sent events, GET)

    def token(self, symbol: str) -> TokenInfo:
        try:
            return self.tokens[symbol]
        except KeyError:
            raise KeyError(f"no token {symbol!r} in the address book (have: {', '.join(self.tokens)})") from None

    def token_by_address(self, address: str) -> TokenInfo:
        low = address.lower()
        for t in self.tokens.values():
            if t.address.lower() == low:
                return t
        raise KeyError(f"no token at {address}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def write(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.to_json() + "\n")
        return p

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AddressBook:
        if d.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"address book format {d.get('format_version')} is not {FORMAT_VERSION}")
        aave = dict(d["aave"])
        aave["reserves"] = {k: AaveReserve(**v) for k, v in aave["reserves"].items()}
        return cls(
            chain_id=d["chain_id"],
            rpc_url=d["rpc_url"],
            ws_url=d["ws_url"],
            seed=d["seed"],
            deployer=d["deployer"],
            weth=d["weth"],
            tokens={k: TokenInfo(**v) for k, v in d["tokens"].items()},
            v2={k: V2Venue(**v) for k, v in d["v2"].items()},
            v3=V3Deployment(**d["v3"]),
            pools=[PoolInfo(**p) for p in d["pools"]],
            aave=AaveMarket(**aave),
            traders=list(d.get("traders", [])),
            deployed_at_block=d.get("deployed_at_block", 0),
            format_version=d["format_version"],
            relay_url=d.get("relay_url", ""),
            mev_share_url=d.get("mev_share_url", ""),
        )

    @classmethod
    def read(cls, path: str | Path) -> AddressBook:
        return cls.from_dict(json.loads(Path(path).read_text()))
