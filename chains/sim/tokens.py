"""Token screening: find tokens a bot must never route through (fee-on-transfer, reverting, untransferable).

Exact AMM math assumes a transfer of ``x`` delivers exactly ``x``.  A fee-on-transfer token breaks that (the
pool receives less than the math says), and a paused or blacklisting token makes the whole route revert.
:func:`screen_token` proves a token well-behaved by *doing* transfers in a throw-away fork (pyrevm): a holder
(normally a pool of that token) sends a small amount to a fresh address and the fresh address sends it back;
both legs must succeed and move exactly the amount sent, on both sides.

Typical use (once per token, at start-up; results are cached by the caller)::

    verdicts = screen_tokens(rpc_url, block, {token: pool_holding_it for ...})
    excluded = {t for t, v in verdicts.items() if not v.ok}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from chains.sim.fork import ForkSim, SimError

__all__ = ["TokenVerdict", "screen_token", "screen_tokens"]

Verdict = Literal["ok", "fee_on_transfer", "reverting", "no_balance", "error"]

_TRANSFER = bytes.fromhex("a9059cbb")
_PROBE = "0x00000000000000000000000000000000005CaFe1"  # a codeless address nobody owns


@dataclass(frozen=True, slots=True)
class TokenVerdict:
    token: str
    verdict: Verdict
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"


def _transfer_data(to: str, amount: int) -> bytes:
    return _TRANSFER + bytes(12) + bytes.fromhex(to[2:]) + amount.to_bytes(32, "big")


def screen_token(sim: ForkSim, token: str, holder: str, *, fraction: int = 1000) -> TokenVerdict:
    """Screen ``token`` using ``holder``'s balance (``holder`` is made codeless in ``sim``: use a throw-away fork).

    Sends ``balance // fraction`` (at least 1) holder → probe → holder and checks every balance to the unit.
    """
    try:
        balance = sim.erc20_balance(token, holder)
    except SimError as exc:
        return TokenVerdict(token, "error", f"balanceOf failed: {exc}")
    if balance == 0:
        return TokenVerdict(token, "no_balance", f"{holder} holds none")
    amount = max(balance // fraction, 1)
    sim.make_codeless(holder)
    for sender, receiver in ((holder, _PROBE), (_PROBE, holder)):
        before_s = sim.erc20_balance(token, sender)
        before_r = sim.erc20_balance(token, receiver)
        res = sim.call(sender, token, _transfer_data(receiver, amount), commit=True)
        if not res.success:
            return TokenVerdict(token, "reverting", f"transfer {sender}->{receiver} reverted: {res.reason}")
        if len(res.output) >= 32 and int.from_bytes(res.output[:32], "big") == 0:
            return TokenVerdict(token, "reverting", "transfer returned false")
        sent = before_s - sim.erc20_balance(token, sender)
        got = sim.erc20_balance(token, receiver) - before_r
        if sent != amount or got != amount:
            return TokenVerdict(
                token, "fee_on_transfer", f"sent {amount}: sender lost {sent}, receiver got {got}"
            )
    return TokenVerdict(token, "ok")


def screen_tokens(rpc_url: str, block: int | str, holders: Mapping[str, str]) -> dict[str, TokenVerdict]:
    """Screen every ``token -> holder`` pair on one fresh fork at ``block``."""
    sim = ForkSim(rpc_url, block)
    out: dict[str, TokenVerdict] = {}
    for token, holder in holders.items():
        try:
            out[token] = screen_token(sim, token, holder)
        except SimError as exc:
            out[token] = TokenVerdict(token, "error", str(exc))
    return out
