"""One set of metric objects per Prometheus registry.

prometheus_client refuses to register a metric name twice on one registry, yet several components of one kind
(two relays, a mempool watcher and a block watcher's subscriptions, ...) may share a process registry.  Each
module builds its metric families through :func:`per_registry`, which builds them once per registry (keyed by
the module's own key) and hands the same objects to every later caller.  ``registry=None`` builds unregistered
metrics each time (counting still works, nothing is exported).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry

__all__ = ["per_registry"]

T = TypeVar("T")

_CACHE: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, Any]] = weakref.WeakKeyDictionary()


def per_registry(
    registry: CollectorRegistry | None, key: str, build: Callable[[CollectorRegistry | None], T]
) -> T:
    """``build(registry)`` the first time ``key`` is asked for on ``registry``; the same object afterwards."""
    if registry is None:
        return build(None)
    cache = _CACHE.setdefault(registry, {})
    if key not in cache:
        cache[key] = build(registry)
    found: T = cache[key]
    return found
