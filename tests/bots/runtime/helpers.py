"""Shared helpers of the runtime tests: a tiny test event and condition waits (never timed sleeps)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from typing import ClassVar

from chains.events import Event, Uint64, register_event

TICKS = "test.ticks"


@register_event
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Tick(Event):
    """A numbered test event on ``test.ticks``."""

    KIND: ClassVar[str] = "test_tick"
    TOPIC: ClassVar[str] = TICKS

    n: Uint64


async def until(cond: Callable[[], bool], what: str = "condition", hang_guard: float = 20.0) -> None:
    """Yield to the loop until ``cond()`` holds.  The guard only turns a hang into a readable failure."""
    give_up = time.monotonic() + hang_guard
    while not cond():
        if time.monotonic() > give_up:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0)


class FakeClock:
    """A settable monotonic clock for deterministic lag assertions."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
