"""An engine run as a main program, for the signal tests: ``python -m tests.bots.runtime.engine_main``.

A collector emits ticks as fast as it can; the strategy turns each into an action; the executor is slower (1 ms an
action), so its bounded queue is full when the signal comes and the shutdown really has actions to drain.  Once
``--ready`` actions were executed it prints ``READY`` (the test then sends a signal).  On shutdown it prints the final health
snapshot as one JSON line and exits 0 if the engine stopped cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import AsyncIterator, Sequence

from bots.runtime.engine import Collector, Engine, Executor, Strategy, run_engine
from chains.events import Event

from .helpers import TICKS, Tick


class Ticker(Collector):
    name = "ticker"

    async def events(self) -> AsyncIterator[Event]:
        n = 0
        while True:
            yield Tick(n=n)
            n += 1


class Echo(Strategy[int]):
    name = "echo"
    topics = (TICKS,)

    async def process_event(self, event: Event) -> Sequence[int]:
        assert isinstance(event, Tick)
        return [event.n]


class Recorder(Executor[int]):
    name = "recorder"

    def __init__(self, ready_after: int) -> None:
        self.done: list[int] = []
        self.ready_after = ready_after

    async def execute(self, action: int) -> None:
        await asyncio.sleep(0.001)  # a "submission" round trip
        self.done.append(action)
        if len(self.done) == self.ready_after:
            print("READY", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ready", type=int, default=5)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    recorder = Recorder(args.ready)
    engine = Engine(
        [Ticker()], [Echo()], [recorder], name="signal-test", drain_timeout=5.0,
        event_queue_maxsize=8, action_queue_maxsize=20,
    )  # fmt: skip
    final = run_engine(engine)
    final["executed_in_order"] = recorder.done == list(range(len(recorder.done)))
    print(json.dumps(final), flush=True)
    return 0 if final["state"] == "stopped" and final["shutdown"] is not None else 1


if __name__ == "__main__":
    sys.exit(main())
