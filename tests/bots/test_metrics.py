"""Metrics: a per-process registry served on /metrics (port 0), histograms and counters as scraped text."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import pytest
from prometheus_client import REGISTRY, CollectorRegistry

from bots.metrics import LATENCY_BUCKETS, Metrics, MetricsServerError, process_metrics


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return str(response.read().decode())


def test_serve_on_free_port_and_scrape() -> None:
    metrics = Metrics(CollectorRegistry())
    with metrics.stage("arb", "decode"):
        pass
    metrics.observe_latency("arb", "simulate", 0.003)
    metrics.observe_latency("arb", "simulate", 30.0)  # beyond the last bucket: only +Inf
    metrics.opportunities_total.labels(bot="arb", kind="cycle").inc(3)
    metrics.events_total.labels(bot="arb", source="mempool", kind="pending_swap").inc()
    metrics.on_queue_depth("arb", "strategy:arb:blocks", 17, 0.25)
    metrics.on_collector_restart("arb", "blocks", None)
    metrics.blocks_total.labels(chain_id="31337").inc(2)
    metrics.rows_written("trades", 5)

    server = metrics.serve("127.0.0.1", 0)
    port = server.port
    try:
        assert port > 0 and server.url == f"http://127.0.0.1:{port}/metrics"
        body = scrape(server.url)
    finally:
        server.stop()
    lines = set(body.splitlines())

    assert "# TYPE mevsuite_stage_latency_seconds histogram" in lines
    # the timed stage: one observation, wherever the (loaded) machine put it -- no timed assertion
    assert 'mevsuite_stage_latency_seconds_count{bot="arb",stage="decode"} 1.0' in lines
    assert 'mevsuite_stage_latency_seconds_bucket{bot="arb",le="+Inf",stage="decode"} 1.0' in lines
    assert 'mevsuite_stage_latency_seconds_bucket{bot="arb",le="0.0025",stage="simulate"} 0.0' in lines
    assert 'mevsuite_stage_latency_seconds_bucket{bot="arb",le="0.005",stage="simulate"} 1.0' in lines
    assert 'mevsuite_stage_latency_seconds_bucket{bot="arb",le="10.0",stage="simulate"} 1.0' in lines
    assert 'mevsuite_stage_latency_seconds_bucket{bot="arb",le="+Inf",stage="simulate"} 2.0' in lines
    assert 'mevsuite_stage_latency_seconds_count{bot="arb",stage="simulate"} 2.0' in lines
    assert 'mevsuite_stage_latency_seconds_sum{bot="arb",stage="simulate"} 30.003' in lines
    assert "# TYPE mevsuite_opportunities_total counter" in lines
    assert 'mevsuite_opportunities_total{bot="arb",kind="cycle"} 3.0' in lines
    assert 'mevsuite_events_total{bot="arb",kind="pending_swap",source="mempool"} 1.0' in lines
    assert 'mevsuite_queue_depth{bot="arb",queue="strategy:arb:blocks"} 17.0' in lines
    assert 'mevsuite_queue_lag_seconds{bot="arb",queue="strategy:arb:blocks"} 0.25' in lines
    assert 'mevsuite_collector_restarts_total{bot="arb",collector="blocks"} 1.0' in lines
    assert 'mevsuite_blocks_total{chain_id="31337"} 2.0' in lines
    assert 'mevsuite_db_rows_written_total{table="trades"} 5.0' in lines
    assert any(line.startswith("process_cpu_seconds_total ") for line in lines)  # process collector is on

    # Stopped means stopped: the port no longer answers.
    with pytest.raises(urllib.error.URLError):
        scrape(f"http://127.0.0.1:{port}/metrics")
    server.stop()  # idempotent
    assert not server.running


def test_buckets_span_100us_to_10s() -> None:
    assert LATENCY_BUCKETS[0] == 0.0001 and LATENCY_BUCKETS[-1] == 10.0
    assert list(LATENCY_BUCKETS) == sorted(set(LATENCY_BUCKETS))


def test_registries_are_per_instance_not_global() -> None:
    a, b = Metrics(CollectorRegistry()), Metrics(CollectorRegistry())  # no "Duplicated timeseries" error
    a.blocks_total.labels(chain_id="1").inc()
    assert a.value("mevsuite_blocks_total", {"chain_id": "1"}) == 1.0
    assert b.value("mevsuite_blocks_total", {"chain_id": "1"}) is None
    assert REGISTRY.get_sample_value("mevsuite_blocks_total", {"chain_id": "1"}) is None
    assert process_metrics() is process_metrics()
    assert process_metrics().registry is not REGISTRY


def test_stage_records_even_when_the_body_raises() -> None:
    metrics = Metrics(CollectorRegistry(), process_collectors=False)
    with pytest.raises(RuntimeError), metrics.stage("liq", "submit"):
        raise RuntimeError("relay down")
    assert metrics.value("mevsuite_stage_latency_seconds_count", {"bot": "liq", "stage": "submit"}) == 1.0


def test_bind_failure_is_loud() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(MetricsServerError, match=rf"^metrics: cannot serve on 127\.0\.0\.1:{port}: "):
            Metrics(CollectorRegistry(), process_collectors=False).serve("127.0.0.1", port)


def test_metrics_is_an_engine_observer() -> None:
    """The runtime's EngineObserver hooks land in the right series."""

    class PendingSwap:
        pass

    class Bundle:
        pass

    metrics = Metrics(CollectorRegistry(), process_collectors=False)
    metrics.on_event("arb", "mempool", PendingSwap())
    metrics.on_action("arb", "flashbots", Bundle(), "executed")
    metrics.on_stage_latency("arb", "strategy", 0.0002)
    metrics.on_collector_restart("arb", "blocks", RuntimeError("ws closed"))
    assert (
        metrics.value("mevsuite_events_total", {"bot": "arb", "source": "mempool", "kind": "PendingSwap"})
        == 1
    )
    labels = {"bot": "arb", "kind": "Bundle", "outcome": "executed"}
    assert metrics.value("mevsuite_actions_total", labels) == 1
    assert metrics.value("mevsuite_stage_latency_seconds_count", {"bot": "arb", "stage": "strategy"}) == 1
    assert metrics.value("mevsuite_collector_restarts_total", {"bot": "arb", "collector": "blocks"}) == 1
