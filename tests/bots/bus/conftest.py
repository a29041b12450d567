"""Fixtures of the bus tests: an embedded NATS server per session (never the machine's 4222), clients.

Tests that share :func:`nats_server` use their own chain id (:func:`chain_id`), hence their own streams; a test
that stops, restarts or reconfigures a server (outage, heartbeat TTL) starts its own.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry

from bots.bus import BusClient, NatsServer

_CHAIN_IDS = itertools.count(910_001)


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    with NatsServer(tmp_path_factory.mktemp("nats")) as server:
        yield server


@pytest.fixture
def chain_id() -> int:
    """A chain id no other test in this session uses (so its streams are its own)."""
    return next(_CHAIN_IDS)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


ClientFactory = Callable[..., Awaitable[BusClient]]


@pytest_asyncio.fixture
async def bus_client(nats_server: NatsServer, registry: CollectorRegistry) -> AsyncIterator[ClientFactory]:
    """``await bus_client(name=..., url=..., **connect_kwargs)``; every client is closed after the test."""
    clients: list[BusClient] = []

    async def make(name: str = "test", url: str | None = None, **kwargs: Any) -> BusClient:
        kwargs.setdefault("registry", registry)
        client = await BusClient.connect(url or nats_server.url, name=name, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close(timeout=1.0)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def own_server(tmp_path: Path) -> NatsServer:
    return NatsServer(tmp_path / "nats")
