"""Pool and lending state kept in sync from decoded events, one whole block at a time, with a rollback journal.

:class:`ChainState` holds plain-data state objects — the pools of every registered pool kind
(:mod:`chains.amm.registry`: Uniswap V2 pairs, :class:`chains.amm.uniswap_v2.pool.V2PairState`, and Uniswap V3
pools, :class:`chains.amm.uniswap_v3.pool.V3PoolState`, built in) and one Aave V3 market (:class:`AaveState`) —
that change ONLY through :meth:`ChainState.apply_block` (the logs of one block, as the node returns them: JSON objects with
hex strings).  Every change made while applying block ``n`` is recorded first in that block's journal (the old
value of each touched field, once per block), so :meth:`ChainState.rollback_to` undoes the last
``journal_depth`` blocks exactly; a deeper rollback raises :class:`JournalDepthError` — the caller resyncs with
:func:`load_initial`.  A malformed log makes ``apply_block`` undo the partial block and raise
:class:`StateSyncError`: state is always at a block boundary.

Decoding is a fast path (no ``eth_abi``): dispatch on ``topics[0]`` through a dict, look the emitting address
up in a dict, slice the fixed 64-hex-digit words of ``data`` and ``int(word, 16)`` them.  A pool event goes to
the handler its kind registered (:attr:`chains.amm.registry.PoolProtocol.events`), which changes the pool through
the state's journal (:class:`chains.amm.registry.PoolJournal`).  Topics and addresses
are expected lowercase, as JSON-RPC returns them.

Events applied
--------------
* Pools: each kind's events, listed in its protocol module (V2 ``Sync``: :mod:`chains.amm.uniswap_v2.protocol`;
  V3 ``Initialize``, ``Swap``, ``Mint``, ``Burn``: :mod:`chains.amm.uniswap_v3.protocol`).
* Aave V3 (market given to :func:`load_initial`):

  - scaled balances from the aToken / variable-debt-token events ``Mint``, ``Burn`` and ``BalanceTransfer``:
    ``Mint(value, balanceIncrease, index)`` adds ``(value - balanceIncrease).rayDiv(index)`` (a burn smaller
    than the accrued interest is emitted as a ``Mint`` with ``value < balanceIncrease``: it removes
    ``(balanceIncrease - value).rayDiv(index)``), ``Burn`` removes ``(value + balanceIncrease).rayDiv(index)``,
    ``BalanceTransfer`` moves its (already scaled) value — exactly the integer steps of
    ``ScaledBalanceTokenBase``, so plain aToken transfers and liquidation protocol fees are covered too, which
    the Pool's ``Supply``/``Withdraw`` events alone would miss;
  - ``ReserveDataUpdated``: indexes and rates, ``lastUpdateTimestamp`` = the block's timestamp;
  - ``ReserveUsedAsCollateralEnabled/Disabled``; ``UserEModeSet``;
  - the borrowing bit: set by ``Borrow``; cleared by ``Repay`` / ``LiquidationCall`` when the repaid amount equals
    the user's whole debt before the burn (``stableDebt + variableDebt - amount == 0`` as the Pool checks);
  - oracle ``AssetPriceUpdated(asset, price, timestamp)`` (Aave's mock ``PriceOracle``, the devnet's oracle);
  - configurator ``CollateralConfigurationChanged``, ``EModeAssetCategoryChanged``, ``EModeCategoryAdded``.

  Read once by :func:`load_initial` (not derivable from events): reserve configurations and token addresses,
  every user's scaled balances, flags and e-mode at the load block, e-mode categories, oracle prices.  Stable-rate
  debt is read at load but not followed: a ``StableDebtToken`` Mint/Burn marks the user stale and
  :meth:`AaveState.account_data` then raises :class:`StaleStateError` (stable borrowing is disabled on the devnet
  and deprecated on Aave V3 markets).  Users not passed to :func:`load_initial` are assumed to have had no
  position at the load block.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from eth_utils.crypto import keccak

from chains.abi.blocks import BlockData
from chains.abi.decode import LogDecodeError
from chains.addressbook import AddressBook
from chains.amm.registry import EventHandler as PoolEventHandler
from chains.amm.registry import protocols
from chains.amm.uniswap_v2.pool import V2PairState
from chains.amm.uniswap_v3.pool import TickInfo, V3PoolState
from chains.kinds import PoolKind

# Aave's fixed-point and interest math, shared with the liquidation math (one implementation, checked against
# the real Pool there).
from chains.lending.aave_v3 import EModeCategory as LendingEMode
from chains.lending.aave_v3 import ReserveState as LendingReserve
from chains.lending.aave_v3 import (
    UserReserve,
    calculate_user_account_data,
    getNormalizedDebt,
    getNormalizedIncome,
)
from chains.lending.aave_v3 import calculateCompoundedInterest as _compounded_interest
from chains.lending.aave_v3 import percentMul as _percent_mul
from chains.lending.aave_v3 import rayDiv as _ray_div
from chains.lending.aave_v3 import rayMul as _ray_mul

__all__ = [
    "AaveState",
    "AccountData",
    "BlockOrderError",
    "ChainState",
    "EModeCategory",
    "JournalDepthError",
    "ReserveState",
    "StableDebt",
    "StaleStateError",
    "StateAddresses",
    "StateError",
    "StateSyncError",
    "load_initial",
    "topic",
]


def topic(signature: str) -> str:
    """``topics[0]`` of an event signature, lowercase ``0x`` hex as nodes return it."""
    return "0x" + keccak(text=signature).hex()


T_SCALED_MINT = topic("Mint(address,address,uint256,uint256,uint256)")
T_SCALED_BURN = topic("Burn(address,address,uint256,uint256,uint256)")
T_BALANCE_TRANSFER = topic("BalanceTransfer(address,address,uint256,uint256)")
T_STABLE_MINT = topic("Mint(address,address,uint256,uint256,uint256,uint256,uint256,uint256)")
T_STABLE_BURN = topic("Burn(address,uint256,uint256,uint256,uint256,uint256)")
T_SUPPLY = topic("Supply(address,address,address,uint256,uint16)")
T_WITHDRAW = topic("Withdraw(address,address,address,uint256)")
T_BORROW = topic("Borrow(address,address,address,uint256,uint8,uint256,uint16)")
T_REPAY = topic("Repay(address,address,address,uint256,bool)")
T_LIQUIDATION = topic("LiquidationCall(address,address,address,uint256,uint256,address,bool)")
T_RESERVE_DATA = topic("ReserveDataUpdated(address,uint256,uint256,uint256,uint256,uint256)")
T_COLLATERAL_ON = topic("ReserveUsedAsCollateralEnabled(address,address)")
T_COLLATERAL_OFF = topic("ReserveUsedAsCollateralDisabled(address,address)")
T_EMODE_SET = topic("UserEModeSet(address,uint8)")
T_PRICE = topic("AssetPriceUpdated(address,uint256,uint256)")
T_COLLATERAL_CONFIG = topic("CollateralConfigurationChanged(address,uint256,uint256,uint256)")
T_EMODE_ASSET = topic("EModeAssetCategoryChanged(address,uint8,uint8)")
T_EMODE_ADDED = topic("EModeCategoryAdded(uint8,uint256,uint256,uint256,address,string)")

UINT256_MAX = (1 << 256) - 1
ZERO_ADDRESS = "0x" + "0" * 40


# ---------------------------------------------------------------------------------------------- errors
class StateError(Exception):
    """Base class of what :class:`ChainState` raises."""


class StateSyncError(StateError):
    """A block could not be applied (malformed log, inconsistent event); the state is back at the previous block."""


class BlockOrderError(StateError):
    """``apply_block`` was given a block that does not follow the state's block."""


class JournalDepthError(StateError):
    """A rollback deeper than the journal: the caller must resync from the chain (:func:`load_initial`)."""


class StaleStateError(StateError):
    """Something the events do not determine changed (e.g. a user's stable-rate debt): read it again."""


# ---------------------------------------------------------------------------------------------- state objects
@dataclass(frozen=True, slots=True)
class ReserveState:
    """One Aave reserve: its configuration (read at load, updated by configurator events) and its indexes/rates."""

    asset: str
    id: int
    decimals: int
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    emode_category: int
    a_token: str
    stable_debt_token: str
    variable_debt_token: str
    liquidity_index: int
    variable_borrow_index: int
    liquidity_rate: int
    variable_borrow_rate: int
    stable_borrow_rate: int
    last_update_timestamp: int


@dataclass(frozen=True, slots=True)
class EModeCategory:
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    price_source: str  # lowercase address; the zero address = the assets' own prices


@dataclass(frozen=True, slots=True)
class StableDebt:
    principal: int
    rate: int  # ray
    last_updated: int


@dataclass(frozen=True, slots=True)
class AccountData:
    """What ``Pool.getUserAccountData`` returns, in its order (base currency: the oracle's, 8 decimals here)."""

    total_collateral_base: int
    total_debt_base: int
    available_borrows_base: int
    current_liquidation_threshold: int
    ltv: int
    health_factor: int

    def as_tuple(self) -> tuple[int, int, int, int, int, int]:
        return (
            self.total_collateral_base,
            self.total_debt_base,
            self.available_borrows_base,
            self.current_liquidation_threshold,
            self.ltv,
            self.health_factor,
        )


@dataclass(slots=True, eq=False)
class AaveState:
    """One Aave V3 market as plain data; keys are lowercase addresses, per-user maps are keyed ``(asset, user)``."""

    pool: str
    oracle: str
    configurator: str
    reserves: dict[str, ReserveState] = field(default_factory=dict)
    prices: dict[str, int] = field(default_factory=dict)
    emode_categories: dict[int, EModeCategory] = field(default_factory=dict)
    a_scaled: dict[tuple[str, str], int] = field(default_factory=dict)
    v_scaled: dict[tuple[str, str], int] = field(default_factory=dict)
    stable: dict[tuple[str, str], StableDebt] = field(default_factory=dict)
    collateral: dict[tuple[str, str], bool] = field(default_factory=dict)
    borrowing: dict[tuple[str, str], bool] = field(default_factory=dict)
    user_emode: dict[str, int] = field(default_factory=dict)
    stale: dict[str, str] = field(default_factory=dict)  # user -> why

    def normalized_income(self, r: ReserveState, now: int) -> int:
        return getNormalizedIncome(r.liquidity_index, r.liquidity_rate, r.last_update_timestamp, now)

    def normalized_debt(self, r: ReserveState, now: int) -> int:
        return getNormalizedDebt(
            r.variable_borrow_index, r.variable_borrow_rate, r.last_update_timestamp, now
        )

    def stable_balance(self, asset: str, user: str, now: int) -> int:
        s = self.stable.get((asset, user))
        if s is None or s.principal == 0:
            return 0
        return _ray_mul(s.principal, _compounded_interest(s.rate, s.last_updated, now))

    def users(self) -> list[str]:
        keys = set(self.user_emode)
        for d in (self.a_scaled, self.v_scaled, self.collateral, self.borrowing):
            keys.update(u for _, u in d)
        return sorted(keys)

    def account_data(self, user: str, timestamp: int) -> AccountData:
        """``Pool.getUserAccountData(user)`` at a block with this ``timestamp``: the tracked balances and flags
        handed to the one account model, :func:`chains.lending.aave_v3.calculate_user_account_data`."""
        user = user.lower()
        if user in self.stale:
            raise StaleStateError(f"Aave state of {user} is stale: {self.stale[user]}")
        category = self.user_emode.get(user, 0)
        emode: LendingEMode | None = None
        if category:
            cat = self.emode_categories.get(category)
            if cat is None:
                raise StaleStateError(f"e-mode category {category} of {user} is unknown")
            e_price = self.prices.get(cat.price_source, 0) if cat.price_source != ZERO_ADDRESS else 0
            emode = LendingEMode(cat.ltv, cat.liquidation_threshold, cat.liquidation_bonus, e_price)
        reserves: list[LendingReserve] = []
        positions: dict[str, UserReserve] = {}
        for asset, r in self.reserves.items():
            key = (asset, user)
            coll = self.collateral.get(key, False)
            borr = self.borrowing.get(key, False)
            if not coll and not borr:
                continue
            emode_priced = emode is not None and emode.price != 0 and category == r.emode_category
            price = self.prices.get(asset)
            if price is None and not emode_priced:
                raise StaleStateError(f"no oracle price for {asset}")
            reserves.append(
                LendingReserve(
                    asset=asset,
                    decimals=r.decimals,
                    ltv=r.ltv,
                    liquidation_threshold=r.liquidation_threshold,
                    liquidation_bonus=r.liquidation_bonus,
                    liquidation_protocol_fee=0,  # not part of the account data
                    liquidity_index=r.liquidity_index,
                    variable_borrow_index=r.variable_borrow_index,
                    current_liquidity_rate=r.liquidity_rate,
                    current_variable_borrow_rate=r.variable_borrow_rate,
                    last_update_timestamp=r.last_update_timestamp,
                    price=price or 0,
                    emode_category=r.emode_category,
                )
            )
            positions[asset] = UserReserve(
                scaled_a_token_balance=self.a_scaled.get(key, 0),
                scaled_variable_debt=self.v_scaled.get(key, 0) if borr else 0,
                stable_debt=self.stable_balance(asset, user, timestamp) if borr else 0,
                using_as_collateral=coll,
            )
        d = calculate_user_account_data(reserves, positions, timestamp, category, emode)
        available = _percent_mul(d.total_collateral_base, d.avg_ltv)
        available = available - d.total_debt_base if available >= d.total_debt_base else 0
        return AccountData(
            d.total_collateral_base,
            d.total_debt_base,
            available,
            d.avg_liquidation_threshold,
            d.avg_ltv,
            d.health_factor,
        )


# ---------------------------------------------------------------------------------------------- the journal
_MISSING: Any = object()
_UNDO_DICT, _UNDO_FIELDS = 0, 1


@dataclass(slots=True)
class _BlockJournal:
    number: int
    hash: str
    before: tuple[
        int | None, str | None, int | None
    ]  # (number, hash, timestamp) of the state before this block
    undo: list[tuple[Any, ...]] = field(default_factory=list)
    saved_pools: set[str] = field(default_factory=set)
    saved_entries: set[tuple[int, Any]] = field(default_factory=set)


def _undo(entries: list[tuple[Any, ...]]) -> None:
    for entry in reversed(entries):
        if entry[0] == _UNDO_FIELDS:
            pool = entry[1]
            for name, value in zip(entry[2], entry[3], strict=True):
                setattr(pool, name, value)
        else:
            d, key, old = entry[1], entry[2], entry[3]
            if old is _MISSING:
                d.pop(key, None)
            else:
                d[key] = old


Handler = Callable[[dict[str, Any], Sequence[str]], None]  # (log, its topics)


class ChainState:
    """The synced state of the pools and the Aave market one process follows (see the module docstring).

    ``pools[kind]`` maps a lower-case address to the pool's state, for every pool kind registered when the state
    is created (:mod:`chains.amm.registry`); :attr:`v2` and :attr:`v3` are the built-in kinds' maps, typed.
    """

    def __init__(self, *, journal_depth: int = 64) -> None:
        if journal_depth < 1:
            raise ValueError("journal_depth must be >= 1")
        self.journal_depth = journal_depth
        self._kinds = {p.kind: p for p in protocols()}
        self.pools: dict[str, dict[str, Any]] = {kind: {} for kind in self._kinds}
        self.aave: AaveState | None = None
        self.block_number: int | None = None
        self.block_hash: str | None = None
        self.timestamp: int | None = None
        self._journal: deque[_BlockJournal] = deque()
        self._cur: _BlockJournal = _BlockJournal(-1, "", (None, None, None))
        # pools the last apply_block (or rollback_to: the undone blocks') changed, lower-case
        self.last_changed: frozenset[str] = frozenset()
        self._aave_tokens: dict[str, tuple[str, str]] = {}  # token -> (asset, "a" | "v" | "s")
        self._debt_before: dict[
            tuple[str, str], int
        ] = {}  # (asset, user) -> variable debt before its last burn
        # topics[0] -> the (kind, handler) of every kind with that event (handlers stay bound methods and plain
        # functions, so a deepcopy or a pickle of the state is a state of its own)
        self._pool_events: dict[str, tuple[tuple[str, PoolEventHandler], ...]] = {}
        for p in self._kinds.values():
            for t, handler in p.events.items():
                self._pool_events[t] = (*self._pool_events.get(t, ()), (p.kind, handler))
        self._handlers: dict[str, Handler] = dict.fromkeys(self._pool_events, self._on_pool_event)

    def _on_pool_event(self, log: dict[str, Any], topics: Sequence[str]) -> None:
        address = log["address"]
        for kind, handler in self._pool_events[topics[0]]:
            pool = self.pools[kind].get(address)
            if pool is not None:
                handler(self, address, pool, log["data"], topics)
                return

    # ------------------------------------------------------------------ registration (before syncing)
    @property
    def v2(self) -> dict[str, V2PairState]:
        """The Uniswap V2 pairs (``pools[PoolKind.V2]``)."""
        return self.pools[PoolKind.V2]

    @property
    def v3(self) -> dict[str, V3PoolState]:
        """The Uniswap V3 pools (``pools[PoolKind.V3]``)."""
        return self.pools[PoolKind.V3]

    def add_pool(self, kind: str, address: str, pool: Any) -> None:
        """Follow ``pool`` (a state of ``kind``'s registered ``state_type``) at ``address``."""
        entry = self._kinds.get(kind)
        if entry is None:
            raise StateError(
                f"pool kind {kind!r} was not registered when this state was created (have: {', '.join(self.pools)})"
            )
        if not isinstance(pool, entry.state_type):
            raise StateError(
                f"a {kind} pool's state is a {entry.state_type.__name__}, not a {type(pool).__name__}"
            )
        self.pools[kind][address.lower()] = pool

    def kind_of(self, address: str) -> str | None:
        """The kind of the followed pool at ``address`` (lower-case), ``None`` if none is."""
        return next((kind for kind, pools in self.pools.items() if address in pools), None)

    def set_aave(self, aave: AaveState) -> None:
        """Track one Aave market (its reserves must be filled: their token addresses route the token events)."""
        self.aave = aave
        self._aave_tokens = {}
        for asset, r in aave.reserves.items():
            self._aave_tokens[r.a_token] = (asset, "a")
            self._aave_tokens[r.variable_debt_token] = (asset, "v")
            self._aave_tokens[r.stable_debt_token] = (asset, "s")
        self._handlers.update(
            {
                T_SCALED_MINT: self._on_scaled_mint,
                T_SCALED_BURN: self._on_scaled_burn,
                T_BALANCE_TRANSFER: self._on_balance_transfer,
                T_STABLE_MINT: self._on_stable_change,
                T_STABLE_BURN: self._on_stable_change,
                T_BORROW: self._on_borrow,
                T_REPAY: self._on_repay,
                T_LIQUIDATION: self._on_liquidation,
                T_RESERVE_DATA: self._on_reserve_data,
                T_COLLATERAL_ON: self._on_collateral_on,
                T_COLLATERAL_OFF: self._on_collateral_off,
                T_EMODE_SET: self._on_emode_set,
                T_PRICE: self._on_price,
                T_COLLATERAL_CONFIG: self._on_collateral_config,
                T_EMODE_ASSET: self._on_emode_asset,
                T_EMODE_ADDED: self._on_emode_added,
            }
        )

    def set_head(self, block_number: int, block_hash: str, timestamp: int | None) -> None:
        """The block the loaded state is at (clears the journal)."""
        self.block_number, self.block_hash, self.timestamp = block_number, block_hash, timestamp
        self._journal.clear()

    # ------------------------------------------------------------------ applying blocks
    def apply_block(
        self,
        block_number: int,
        block_hash: str,
        logs: Iterable[dict[str, Any]],
        *,
        timestamp: int | None = None,
    ) -> frozenset[str]:
        """Apply every log of block ``block_number`` (in log order), journaled so it can be rolled back.

        Returns the pools whose state the block changed (lower-case addresses; also kept as
        :attr:`last_changed`), so no consumer decodes the block's logs a second time.  ``timestamp`` (the
        block's) is needed when an Aave market is tracked (``ReserveDataUpdated`` sets the reserve's
        ``lastUpdateTimestamp`` to it).  Logs with ``removed: true`` are skipped.
        """
        if self.block_number is not None and block_number != self.block_number + 1:
            raise BlockOrderError(
                f"block {block_number} does not follow the state's block {self.block_number}"
            )
        cur = self._cur = _BlockJournal(
            block_number, block_hash, (self.block_number, self.block_hash, self.timestamp)
        )
        self.timestamp = timestamp
        handlers = self._handlers
        log: Any = None
        try:
            for log in logs:
                topics = log["topics"]
                if topics:
                    h = handlers.get(topics[0])
                    if h is not None and not log.get("removed"):
                        h(log, topics)
        except Exception as exc:
            _undo(cur.undo)
            self.timestamp = cur.before[2]
            self._debt_before.clear()
            where = (
                f"log {log.get('logIndex')} of tx {log.get('transactionHash')}"
                if isinstance(log, dict)
                else ""
            )
            raise StateSyncError(f"block {block_number}: {where}: {type(exc).__name__}: {exc}") from exc
        self._debt_before.clear()
        self.block_number, self.block_hash = block_number, block_hash
        self._journal.append(cur)
        while len(self._journal) > self.journal_depth:
            self._journal.popleft()
        self.last_changed = frozenset(cur.saved_pools)
        return self.last_changed

    def apply_block_data(self, block: BlockData) -> frozenset[str]:
        """:meth:`apply_block` for a :class:`chains.abi.blocks.BlockData` (from :func:`chains.abi.blocks.fetch_block`)."""
        return self.apply_block(
            block.block.number, block.block.hash, block.logs, timestamp=block.block.timestamp
        )

    def pools_in(self, logs: Iterable[dict[str, Any]]) -> frozenset[str]:
        """The tracked pools that ``logs`` carry a pool event of (lower-case addresses): what applying them
        changes, without applying them (e.g. the block a state was loaded at)."""
        out: set[str] = set()
        for log in logs:
            topics = log.get("topics") or ()
            if topics and str(topics[0]).lower() in self._pool_events and not log.get("removed"):
                address = str(log.get("address", "")).lower()
                if self.kind_of(address) is not None:
                    out.add(address)
        return frozenset(out)

    def preview(self, logs: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """The states of the pools ``logs`` would change, as they would be after them (copies, by lower-case
        address), e.g. for the logs of a simulated pending transaction.  The same handlers as
        :meth:`apply_block` run, then everything is undone: the state itself is unchanged.  A malformed log is a
        :class:`StateSyncError`."""
        before = self._cur
        cur = self._cur = _BlockJournal(-1, "", (self.block_number, self.block_hash, self.timestamp))
        handlers = self._handlers
        try:
            for log in logs:
                topics = [str(t).lower() for t in log.get("topics") or ()]
                h = handlers.get(topics[0]) if topics else None
                if h is not None and not log.get("removed"):
                    h({**log, "address": str(log.get("address", "")).lower(), "topics": topics}, topics)
            out: dict[str, Any] = {}
            for address in cur.saved_pools:
                kind = self.kind_of(address)
                assert kind is not None
                out[address] = self._kinds[kind].copy(self.pools[kind][address])
            return out
        except (KeyError, TypeError, ValueError) as exc:
            raise StateSyncError(f"preview: {type(exc).__name__}: {exc}") from exc
        finally:
            _undo(cur.undo)
            self._debt_before.clear()
            self._cur = before

    def rollback_to(self, block_number: int) -> None:
        """Undo every applied block after ``block_number``; deeper than the journal -> :class:`JournalDepthError`."""
        if self.block_number is None or block_number >= self.block_number:
            if self.block_number is not None and block_number > self.block_number:
                raise BlockOrderError(
                    f"cannot roll back to {block_number}: the state is at {self.block_number}"
                )
            return
        oldest = self._journal[0].before[0] if self._journal else self.block_number
        if oldest is None or block_number < oldest:
            raise JournalDepthError(
                f"cannot roll back to block {block_number}: the journal reaches back to "
                f"{oldest} (depth {self.journal_depth}); resync from the chain"
            )
        undone: set[str] = set()
        while self._journal and self._journal[-1].number > block_number:
            j = self._journal.pop()
            _undo(j.undo)
            undone |= j.saved_pools
            self.block_number, self.block_hash, self.timestamp = j.before
        self.last_changed = frozenset(undone)

    def journal_blocks(self) -> list[tuple[int, str]]:
        """(number, hash) of the blocks that can be rolled back, oldest first (reorg detection)."""
        return [(j.number, j.hash) for j in self._journal]

    # ------------------------------------------------------------------ journal helpers
    def _put(self, d: dict[Any, Any], key: Any, value: Any) -> None:
        self.save_entry(d, key)
        d[key] = value

    # chains.amm.registry.PoolJournal: what pool event handlers change pools through
    def save_fields(self, address: str, pool: Any, fields: tuple[str, ...]) -> None:
        cur = self._cur
        if address not in cur.saved_pools:
            cur.saved_pools.add(address)
            cur.undo.append((_UNDO_FIELDS, pool, fields, tuple([getattr(pool, f) for f in fields])))

    def save_entry(self, d: dict[Any, Any], key: Any) -> None:
        k = (id(d), key)
        cur = self._cur
        if k not in cur.saved_entries:
            cur.saved_entries.add(k)
            cur.undo.append((_UNDO_DICT, d, key, d.get(key, _MISSING)))

    # ------------------------------------------------------------------ Aave handlers
    def _aave(self) -> AaveState:
        assert self.aave is not None
        return self.aave

    def _scaled_map(self, kind: str) -> dict[tuple[str, str], int]:
        aave = self._aave()
        return aave.a_scaled if kind == "a" else aave.v_scaled

    def _change_scaled(self, asset: str, kind: str, user: str, delta: int, index: int, burn: bool) -> None:
        scaled = self._scaled_map(kind)
        key = (asset, user)
        before = scaled.get(key, 0)
        if burn and kind == "v":
            self._debt_before[key] = _ray_mul(before, index)
        after = before + delta
        if after < 0:
            raise StateSyncError(f"scaled balance of {user} in {asset} ({kind}) would become {after}")
        self._put(scaled, key, after)

    def _on_scaled_mint(self, log: dict[str, Any], topics: Sequence[str]) -> None:
        tok = self._aave_tokens.get(log["address"])
        if tok is None or tok[1] == "s":
            return
        data = log["data"]
        if len(data) != 194 or len(topics) != 3:
            raise LogDecodeError("scaled-token Mint does not have 3 topics and 3 data words")
        value, increase, index = int(data[2:66], 16), int(data[66:130], 16), int(data[130:194], 16)
        user = "0x" + topics[2][26:]
        if value >= increase:
            if value > increase:
                self._change_scaled(tok[0], tok[1], user, _ray_div(value - increase, index), index, False)
        else:  # a burn smaller than the accrued interest is emitted as a Mint
            self._change_scaled(tok[0], tok[1], user, -_ray_div(increase - value, index), index, True)

    def _on_scaled_burn(self, log: dict[str, Any], topics: Sequence[str]) -> None:
        tok = self._aave_tokens.get(log["address"])
        if tok is None or tok[1] == "s":
            return
        data = log["data"]
        if len(data) != 194 or len(topics) != 3:
            raise LogDecodeError("scaled-token Burn does not have 3 topics and 3 data words")
        value, increase, index = int(data[2:66], 16), int(data[66:130], 16), int(data[130:194], 16)
        self._change_scaled(
            tok[0], tok[1], "0x" + topics[1][26:], -_ray_div(value + increase, index), index, True
        )

    def _on_balance_transfer(self, log: dict[str, Any], topics: Sequence[str]) -> None:
        tok = self._aave_tokens.get(log["address"])
        if tok is None or tok[1] != "a":
            return
        data = log["data"]
        if len(data) != 130 or len(topics) != 3:
            raise LogDecodeError("BalanceTransfer does not have 3 topics and 2 data words")
        scaled = int(data[2:66], 16)
        src, dst = "0x" + topics[1][26:], "0x" + topics[2][26:]
        if src != dst and scaled:
            index = int(data[66:130], 16)
            self._change_scaled(tok[0], "a", src, -scaled, index, False)
            self._change_scaled(tok[0], "a", dst, scaled, index, False)

    def _on_stable_change(self, log: dict[str, Any], topics: Sequence[str]) -> None:
        tok = self._aave_tokens.get(log["address"])
        if tok is None or tok[1] != "s" or len(topics) < 2:
            return
        self._put(self._aave().stale, "0x" + topics[1][26:], f"stable-rate debt in {tok[0]} changed")
        if len(topics) > 2:
            self._put(self._aave().stale, "0x" + topics[2][26:], f"stable-rate debt in {tok[0]} changed")

    def _pool_event(self, log: dict[str, Any]) -> bool:
        return self.aave is not None and log["address"] == self.aave.pool

    def _on_borrow(self, log: dict[str, Any], topics: Sequence[str]) -> None:
        if not self._pool_event(log):
            return
        self._put(self._aave().borrowing, ("0x" + topics[1][26:], "0x" + topics[2][26:]), True)

    def _clear_borrowing_if_repaid(self, asset: str, user: str, amount: int) -> None:
        aave = self._aave()
        key = (asset, user)
        s = aave.stable.get(key)
        if s is not None and s.principal:
            self._put(aave.stale, user, f"repaid {asset} with stable-rate debt outstanding")
            return
        before = self._debt_before.pop(key, None)
        if before is None:
            self._put(aave.stale, user, f"repaid {asset} without a variable-debt burn")
            return
        if before == amount:
            self._put(aave.borrowing, key, False)

    def _on_repay(self, log: dict[str, Any], topics: Sequence[str]) -> None:
        if not self._pool_event(log):
            return
        self._clear_borrowing_if_repaid(
            "0x" + topics[1][26:], "0x" + topics[2][26:], int(log["data"][2:66], 16)
        )

    def _on_liquidation(self, log: dict[str, Any], topics: Sequence[str]) -> None:
        if not self._pool_event(log):
            return
        self._clear_borrowing_if_repaid(
            "0x" + topics[2][26:], "0x" + topics[3][26:], int(log["data"][2:66], 16)
        )

    def _on_reserve_data(self, log: dict[str, Any], topics: Sequence[str]) -> None:
        if not self._pool_event(log):
            return
        aave = self._aave()
        asset = "0x" + topics[1][26:]
        r = aave.reserves.get(asset)
        if r is None:
            return
        if self.timestamp is None:
            raise StateSyncError("apply_block needs the block timestamp to follow Aave (ReserveDataUpdated)")
        data = log["data"]
        if len(data) != 2 + 5 * 64:
            raise LogDecodeError("ReserveDataUpdated data is not 5 words")
        w = [int(data[2 + 64 * i : 66 + 64 * i], 16) for i in range(5)]
        self._put(
            aave.reserves,
            asset,
            replace(
                r,
                liquidity_rate=w[0],
                stable_borrow_rate=w[1],
                variable_borrow_rate=w[2],
                liquidity_index=w[3],
                variable_borrow_index=w[4],
                last_update_timestamp=self.timestamp,
            ),
        )

    def _on_collateral_on(self, log: dict[str, Any], topics: Sequence[str]) -> None:
        if self._pool_event(log):
            self._put(self._aave().collateral, ("0x" + topics[1][26:], "0x" + topics[2][26:]), True)

    def _on_collateral_off(self, log: dict[str, Any], topics: Sequence[str]) -> None:
        if self._pool_event(log):
            self._put(self._aave().collateral, ("0x" + topics[1][26:], "0x" + topics[2][26:]), False)

    def _on_emode_set(self, log: dict[str, Any], topics: Sequence[str]) -> None:
        if self._pool_event(log):
            self._put(self._aave().user_emode, "0x" + topics[1][26:], int(log["data"][2:66], 16))

    def _on_price(self, log: dict[str, Any], topics: Sequence[str]) -> None:
        aave = self.aave
        if aave is None or log["address"] != aave.oracle:
            return
        data = log["data"]
        if len(data) != 2 + 3 * 64:
            raise LogDecodeError("AssetPriceUpdated data is not 3 words")
        self._put(aave.prices, "0x" + data[26:66], int(data[66:130], 16))

    def _on_collateral_config(self, log: dict[str, Any], topics: Sequence[str]) -> None:
        aave = self.aave
        if aave is None or log["address"] != aave.configurator:
            return
        asset = "0x" + topics[1][26:]
        r = aave.reserves.get(asset)
        if r is not None:
            data = log["data"]
            self._put(
                aave.reserves,
                asset,
                replace(
                    r,
                    ltv=int(data[2:66], 16),
                    liquidation_threshold=int(data[66:130], 16),
                    liquidation_bonus=int(data[130:194], 16),
                ),
            )

    def _on_emode_asset(self, log: dict[str, Any], topics: Sequence[str]) -> None:
        aave = self.aave
        if aave is None or log["address"] != aave.configurator:
            return
        asset = "0x" + topics[1][26:]
        r = aave.reserves.get(asset)
        if r is not None:
            self._put(aave.reserves, asset, replace(r, emode_category=int(log["data"][66:130], 16)))

    def _on_emode_added(self, log: dict[str, Any], topics: Sequence[str]) -> None:
        aave = self.aave
        if aave is None or log["address"] != aave.configurator:
            return
        data = log["data"]
        w = [int(data[2 + 64 * i : 66 + 64 * i], 16) for i in range(4)]
        self._put(
            aave.emode_categories,
            int(topics[1], 16),
            EModeCategory(w[0], w[1], w[2], "0x" + data[2 + 64 * 3 + 24 : 2 + 64 * 4]),
        )

    # ------------------------------------------------------------------ reading
    def account_data(self, user: str, timestamp: int | None = None) -> AccountData:
        """``getUserAccountData(user)`` from the tracked state at ``timestamp`` (default: the state's block)."""
        if self.aave is None:
            raise StateError("no Aave market is tracked")
        ts = self.timestamp if timestamp is None else timestamp
        if ts is None:
            raise StateError("the state has no block timestamp; pass timestamp=")
        return self.aave.account_data(user, ts)


# ---------------------------------------------------------------------------------------------- initial load
class LoadRpc(Protocol):
    async def request(self, method: str, params: Any = None) -> Any: ...

    async def batch(
        self, calls: Sequence[tuple[str, Any]], *, return_exceptions: bool = False
    ) -> list[Any]: ...


@dataclass(frozen=True, slots=True)
class StateAddresses:
    """What to follow when there is no address book: pools, and optionally one Aave market and its users."""

    v2_pairs: Mapping[str, int] = field(default_factory=dict)  # pair -> fee in bps
    v3_pools: Sequence[str] = ()
    aave_pool: str | None = None
    aave_oracle: str | None = None
    aave_configurator: str | None = None
    aave_users: Sequence[str] = ()


def _sel(sig: str) -> str:
    return "0x" + keccak(text=sig)[:4].hex()


def _addr_arg(a: str) -> str:
    return a.lower()[2:].rjust(64, "0")


def _words(data: Any, n: int) -> list[int]:
    if not isinstance(data, str) or len(data) < 2 + 64 * n:
        raise StateError(f"unexpected return data {data!r:.80}")
    return [int(data[2 + 64 * i : 66 + 64 * i], 16) for i in range(n)]


async def _eth_calls(rpc: LoadRpc, calls: Sequence[tuple[str, str]], tag: str) -> list[Any]:
    out: list[Any] = []
    for i in range(0, len(calls), 1000):
        out.extend(
            await rpc.batch(
                [("eth_call", [{"to": to, "data": data}, tag]) for to, data in calls[i : i + 1000]]
            )
        )
    return out


async def load_initial(
    rpc: LoadRpc,
    book_or_addresses: AddressBook | StateAddresses,
    block: int,
    *,
    users: Iterable[str] | None = None,
    journal_depth: int = 64,
) -> ChainState:
    """Read the state of every pool (and the Aave market) at ``block`` over RPC: the only I/O of this module.

    With an :class:`AddressBook`, every pool is followed and the Aave users are the book's borrowers plus
    ``users``; with :class:`StateAddresses`, what it lists (``users`` are added to ``aave_users``).
    """
    from chains.state.snapshot import read_v2_pair, read_v3_pool

    tag = hex(block)
    head = await rpc.request("eth_getBlockByNumber", [tag, False])
    if not isinstance(head, dict):
        raise StateError(f"block {block} does not exist")
    state = ChainState(journal_depth=journal_depth)
    aave_pool: str | None
    oracle: str | None
    configurator: str | None
    if isinstance(book_or_addresses, AddressBook):
        book = book_or_addresses
        v2 = {p.address: p.fee for p in book.pools if p.kind == PoolKind.V2}
        v3 = [p.address for p in book.pools if p.kind == PoolKind.V3]
        aave_pool, oracle, configurator = book.aave.pool, book.aave.oracle, book.aave.pool_configurator
        aave_users = list(book.aave.borrowers)
    else:
        a = book_or_addresses
        v2, v3 = dict(a.v2_pairs), list(a.v3_pools)
        aave_pool, oracle, configurator, aave_users = (
            a.aave_pool,
            a.aave_oracle,
            a.aave_configurator,
            list(a.aave_users),
        )
    aave_users += list(users or [])
    for address, fee_bps in v2.items():
        p = await read_v2_pair(rpc, address, block)
        state.add_pool(
            PoolKind.V2,
            address,
            V2PairState(
                p.address.lower(), p.token0.lower(), p.token1.lower(), p.reserve0, p.reserve1, fee_bps
            ),
        )
    for address in v3:
        q = await read_v3_pool(rpc, address, block)
        state.add_pool(
            PoolKind.V3,
            address,
            V3PoolState(
                fee=q.fee,
                tick_spacing=q.tick_spacing,
                sqrt_price_x96=q.sqrt_price_x96,
                tick=q.tick,
                liquidity=q.liquidity,
                ticks={t: TickInfo(g, n) for t, (g, n) in q.ticks.items()},
                bitmap=dict(q.bitmap),
            ),
        )
    if aave_pool is not None:
        if oracle is None:
            raise StateError("an Aave market needs its oracle address")
        state.set_aave(await _load_aave(rpc, aave_pool, oracle, configurator, aave_users, tag))
    state.set_head(block, str(head["hash"]), int(head["timestamp"], 16))
    return state


async def _load_aave(
    rpc: LoadRpc, pool: str, oracle: str, configurator: str | None, users: Sequence[str], tag: str
) -> AaveState:
    pool, oracle = pool.lower(), oracle.lower()
    if not configurator:
        (provider,) = _words((await _eth_calls(rpc, [(pool, _sel("ADDRESSES_PROVIDER()"))], tag))[0], 1)
        (conf,) = _words(
            (await _eth_calls(rpc, [(f"0x{provider:040x}", _sel("getPoolConfigurator()"))], tag))[0], 1
        )
        configurator = f"0x{conf:040x}"
    aave = AaveState(pool=pool, oracle=oracle, configurator=str(configurator).lower())
    listing = (await _eth_calls(rpc, [(pool, _sel("getReservesList()"))], tag))[0]
    n = _words(listing, 2)[1]
    assets = [f"0x{w:040x}" for w in _words(listing, 2 + n)[2:]]
    datas = await _eth_calls(
        rpc, [(pool, _sel("getReserveData(address)") + _addr_arg(a)) for a in assets], tag
    )
    for asset, data in zip(assets, datas, strict=True):
        w = _words(data, 15)
        conf_bits = w[0]
        aave.reserves[asset] = ReserveState(
            asset=asset,
            id=w[7],
            decimals=conf_bits >> 48 & 0xFF,
            ltv=conf_bits & 0xFFFF,
            liquidation_threshold=conf_bits >> 16 & 0xFFFF,
            liquidation_bonus=conf_bits >> 32 & 0xFFFF,
            emode_category=conf_bits >> 168 & 0xFF,
            a_token=f"0x{w[8]:040x}",
            stable_debt_token=f"0x{w[9]:040x}",
            variable_debt_token=f"0x{w[10]:040x}",
            liquidity_index=w[1],
            liquidity_rate=w[2],
            variable_borrow_index=w[3],
            variable_borrow_rate=w[4],
            stable_borrow_rate=w[5],
            last_update_timestamp=w[6],
        )
    cats = await _eth_calls(
        rpc, [(pool, _sel("getEModeCategoryData(uint8)") + f"{i:064x}") for i in range(1, 256)], tag
    )
    for i, data in enumerate(cats, start=1):
        w = _words(
            data, 5
        )  # (offset of the tuple, ltv, liquidationThreshold, liquidationBonus, priceSource, ...)
        if w[2]:
            aave.emode_categories[i] = EModeCategory(w[1], w[2], w[3], f"0x{w[4]:040x}")
    priced = sorted(set(assets) | {c.price_source for c in aave.emode_categories.values()} - {ZERO_ADDRESS})
    prices = await _eth_calls(
        rpc, [(oracle, _sel("getAssetPrice(address)") + _addr_arg(a)) for a in priced], tag
    )
    aave.prices = {a: _words(p, 1)[0] for a, p in zip(priced, prices, strict=True)}
    for user in dict.fromkeys(u.lower() for u in users):
        calls = [
            (pool, _sel("getUserConfiguration(address)") + _addr_arg(user)),
            (pool, _sel("getUserEMode(address)") + _addr_arg(user)),
        ]
        for a in assets:
            r = aave.reserves[a]
            calls += [
                (r.a_token, _sel("scaledBalanceOf(address)") + _addr_arg(user)),
                (r.variable_debt_token, _sel("scaledBalanceOf(address)") + _addr_arg(user)),
                (r.stable_debt_token, _sel("principalBalanceOf(address)") + _addr_arg(user)),
                (r.stable_debt_token, _sel("getUserStableRate(address)") + _addr_arg(user)),
                (r.stable_debt_token, _sel("getUserLastUpdated(address)") + _addr_arg(user)),
            ]
        out = [_words(x, 1)[0] for x in await _eth_calls(rpc, calls, tag)]
        config, emode = out[0], out[1]
        if emode:
            aave.user_emode[user] = emode
        for i, a in enumerate(assets):
            r = aave.reserves[a]
            a_s, v_s, principal, rate, last = out[2 + 5 * i : 7 + 5 * i]
            key = (a, user)
            if a_s:
                aave.a_scaled[key] = a_s
            if v_s:
                aave.v_scaled[key] = v_s
            if principal:
                aave.stable[key] = StableDebt(principal, rate, last)
            if config >> (2 * r.id) & 1:
                aave.borrowing[key] = True
            if config >> (2 * r.id + 1) & 1:
                aave.collateral[key] = True
    return aave
