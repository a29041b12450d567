"""chains.promreg: metric families built once per registry, shared by every component on it."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from chains.promreg import per_registry


def _build(registry: CollectorRegistry | None) -> Counter:
    return Counter("mevsuite_test_things_total", "things", registry=registry)


def test_one_family_per_registry_and_key() -> None:
    r1, r2 = CollectorRegistry(), CollectorRegistry()
    a = per_registry(r1, "k", _build)
    assert per_registry(r1, "k", _build) is a  # a second build would raise "Duplicated timeseries"
    b = per_registry(r2, "k", _build)
    assert b is not a
    a.inc(3)
    assert r1.get_sample_value("mevsuite_test_things_total") == 3
    assert r2.get_sample_value("mevsuite_test_things_total") == 0


def test_no_registry_builds_unregistered_metrics_each_time() -> None:
    assert per_registry(None, "k", _build) is not per_registry(None, "k", _build)
