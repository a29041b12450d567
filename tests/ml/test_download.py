"""ml.download against a local aiohttp server speaking Binance's REST protocol (/api/v3/klines, exchangeInfo)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from aiohttp import web

from ml.data import load_ohlcv
from ml.download import (
    CSV_HEADER,
    DownloadError,
    download_main,
    download_ohlcv,
    rewrite_api_urls,
    to_ms,
)

HOUR_MS = 3_600_000
T0 = to_ms("2024-01-01")
assert T0 is not None
N_BARS = 1_050


def _bar(i: int) -> list[Any]:
    """One Binance kline row (strings for prices, as the real API sends them)."""
    t = T0 + i * HOUR_MS
    base = 40_000.0 + 25.0 * ((i * 7919) % 97) - 12.5 * (i % 13)
    o, c = base, base + (i % 5) - 2
    h, low = max(o, c) + 3.5, min(o, c) - 4.25
    vol = 10.0 + (i % 17)
    return [
        t,
        f"{o:.2f}",
        f"{h:.2f}",
        f"{low:.2f}",
        f"{c:.2f}",
        f"{vol:.5f}",
        t + HOUR_MS - 1,
        f"{vol * c:.4f}",
        100 + i % 50,
        f"{vol / 2:.5f}",
        f"{vol * c / 2:.4f}",
        "0",
    ]


BARS = [_bar(i) for i in range(N_BARS)]


def _symbol_info() -> dict[str, Any]:
    return {
        "symbol": "BTCUSDT",
        "status": "TRADING",
        "baseAsset": "BTC",
        "baseAssetPrecision": 8,
        "quoteAsset": "USDT",
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": True,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.01000000",
                "maxPrice": "1000000.00000000",
                "tickSize": "0.01000000",
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": "0.00001000",
                "maxQty": "9000.00000000",
                "stepSize": "0.00001000",
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": "5.00000000",
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT", "MARGIN"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


@dataclass
class FakeBinance:
    base_url: str = ""
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    rate_limit_next: int = 0  # answer this many klines requests with HTTP 429 first

    def klines_requests(self) -> list[dict[str, str]]:
        return [q for p, q in self.requests if p == "/api/v3/klines"]

    async def exchange_info(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.query)))
        body: dict[str, Any] = {
            "timezone": "UTC",
            "serverTime": int(time.time() * 1000),
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000}
            ],
            "exchangeFilters": [],
            "symbols": [],
        }
        if request.path.startswith("/api/"):
            body["symbols"] = [_symbol_info()]
        else:  # fapi/dapi: a real-shaped answer without markets
            body["assets"] = []
        return web.json_response(body)

    async def klines(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        self.requests.append((request.path, q))
        if self.rate_limit_next > 0:
            self.rate_limit_next -= 1
            return web.json_response(
                {
                    "code": -1003,
                    "msg": "Too many requests; current limit of IP(127.0.0.1) is 6000 requests per "
                    "minute. Please use the websocket for live updates to avoid bans.",
                },
                status=429,
                headers={"Retry-After": "0"},
            )
        if q.get("symbol") != "BTCUSDT":
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        if q.get("interval") != "1h":
            return web.json_response({"code": -1120, "msg": "Invalid interval."}, status=400)
        limit = min(int(q.get("limit", 500)), 1000)
        rows = BARS
        if "startTime" in q:
            rows = [r for r in rows if r[0] >= int(q["startTime"])]
        if "endTime" in q:
            rows = [r for r in rows if r[0] <= int(q["endTime"])]
        rows = rows[:limit] if "startTime" in q else rows[-limit:]
        return web.json_response(rows)


@pytest.fixture(scope="module")
def fake_binance() -> Any:
    state = FakeBinance()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        app = web.Application()
        app.router.add_get("/api/v3/exchangeInfo", state.exchange_info)
        app.router.add_get("/fapi/v1/exchangeInfo", state.exchange_info)
        app.router.add_get("/dapi/v1/exchangeInfo", state.exchange_info)
        app.router.add_get("/api/v3/klines", state.klines)
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        server = site._server
        assert server is not None
        holder["port"] = server.sockets[0].getsockname()[1]
        holder["runner"] = runner
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    state.base_url = f"http://127.0.0.1:{holder['port']}"
    yield state
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


@pytest.fixture()
def server(fake_binance: FakeBinance) -> FakeBinance:
    fake_binance.requests.clear()
    fake_binance.rate_limit_next = 0
    return fake_binance


def _expected_index(n: int = N_BARS) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime([T0 + i * HOUR_MS for i in range(n)], unit="ms", utc=True))


def test_rewrite_api_urls_keeps_paths() -> None:
    api = {
        "public": "https://api.binance.com/api/v3",
        "nested": {"x": "https://fapi.binance.com/fapi/v1"},
        "n": 3,
    }
    out = rewrite_api_urls(api, "http://127.0.0.1:9/")
    assert out == {
        "public": "http://127.0.0.1:9/api/v3",
        "nested": {"x": "http://127.0.0.1:9/fapi/v1"},
        "n": 3,
    }


def test_paginated_download_with_one_429(server: FakeBinance, tmp_path: Path) -> None:
    server.rate_limit_next = 1
    out = tmp_path / "btc.csv"
    seen: list[int] = []
    download_ohlcv(
        "binance",
        "BTC/USDT",
        "1h",
        since="2024-01-01",
        out=out,
        urls=server.base_url,
        limit=200,
        retry_delay=0.01,
        progress=lambda n, last: seen.append(n),
    )
    kl = server.klines_requests()
    # 6 pages of <= 200 bars + the one answered with 429 (+ possibly a final empty page)
    assert len(kl) >= 7
    assert all(q["limit"] == "200" and q["symbol"] == "BTCUSDT" and q["interval"] == "1h" for q in kl)
    assert kl[0]["startTime"] == kl[1]["startTime"] == str(T0)  # the 429'd request was retried as is
    starts = [int(q["startTime"]) for q in kl[1:]]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert seen == sorted(seen) and seen[-1] == N_BARS
    assert out.read_text().splitlines()[0] == ",".join(CSV_HEADER)

    df = load_ohlcv(out)
    assert len(df) == N_BARS
    assert df.index.equals(_expected_index())
    assert df.attrs["symbol"] == "BTC/USDT" and df.attrs["venue"] == "binance"
    assert df.attrs["timeframe"] == pd.Timedelta(hours=1)
    assert df["close"].iloc[5] == float(BARS[5][4]) and df["volume"].iloc[-1] == float(BARS[-1][5])


class _Interrupted(Exception):
    pass


def test_resume_after_interruption_no_duplicates_no_holes(server: FakeBinance, tmp_path: Path) -> None:
    out = tmp_path / "binance_BTCUSDT_1h.csv"

    def stop_after_two_pages(n: int, last: pd.Timestamp) -> None:
        if n >= 300:
            raise _Interrupted

    with pytest.raises(_Interrupted):
        download_ohlcv(
            "binance",
            "BTC/USDT",
            "1h",
            since=T0,
            out=out,
            urls=server.base_url,
            limit=150,
            progress=stop_after_two_pages,
        )
    first = load_ohlcv(out)
    assert len(first) == 300
    # a torn write at the moment of the interruption
    with open(out, "a", encoding="utf-8") as fh:
        fh.write(f"{T0 + 300 * HOUR_MS},2024-01-13T12:00:00+00:00,4000")

    server.requests.clear()
    download_ohlcv("binance", "BTC/USDT", "1h", since=T0, out=out, urls=server.base_url, limit=150)
    assert int(server.klines_requests()[0]["startTime"]) == T0 + 300 * HOUR_MS
    df = load_ohlcv(out)  # would raise on a duplicate timestamp
    assert df.index.equals(_expected_index())
    assert df["open"].tolist() == [float(b[1]) for b in BARS]

    # a third run has nothing to add
    server.requests.clear()
    download_ohlcv("binance", "BTC/USDT", "1h", since=T0, out=out, urls=server.base_url, limit=150)
    assert len(load_ohlcv(out)) == N_BARS


def test_until_is_exclusive(server: FakeBinance, tmp_path: Path) -> None:
    out = tmp_path / "x.csv"
    download_ohlcv(
        "binance",
        "BTC/USDT",
        "1h",
        since=T0 + 10 * HOUR_MS,
        until=T0 + 130 * HOUR_MS,
        out=out,
        urls=server.base_url,
        limit=50,
    )
    df = load_ohlcv(out)
    assert len(df) == 120
    assert df.index[0] == pd.Timestamp(T0 + 10 * HOUR_MS, unit="ms", tz="UTC")
    assert df.index[-1] == pd.Timestamp(T0 + 129 * HOUR_MS, unit="ms", tz="UTC")


def test_rate_limit_retries_exhausted(server: FakeBinance, tmp_path: Path) -> None:
    server.rate_limit_next = 10
    with pytest.raises(DownloadError, match=r"binance .*failed after 3 attempt"):
        download_ohlcv(
            "binance",
            "BTC/USDT",
            "1h",
            since=T0,
            out=tmp_path / "x.csv",
            urls=server.base_url,
            max_retries=2,
            retry_delay=0.01,
        )


def test_offline_error_is_immediate_and_names_exchange_and_url(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # the port is closed now: connection refused, like an offline machine
    start = time.monotonic()
    with pytest.raises(DownloadError) as info:
        download_ohlcv(
            "binance",
            "BTC/USDT",
            "1h",
            since=T0,
            out=tmp_path / "x.csv",
            urls=f"http://127.0.0.1:{port}",
            max_retries=5,
            retry_delay=5.0,
        )
    assert time.monotonic() - start < 3.0
    msg = str(info.value)
    assert "cannot reach binance" in msg and f"127.0.0.1:{port}/api/v3" in msg


def test_unknown_symbol_exchange_timeframe(server: FakeBinance, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="no market 'DOGE/XYZ'"):
        download_ohlcv("binance", "DOGE/XYZ", "1h", out=tmp_path / "x.csv", urls=server.base_url)
    with pytest.raises(DownloadError, match="unknown exchange 'nosuchx'"):
        download_ohlcv("nosuchx", "BTC/USDT", "1h", out=tmp_path / "x.csv")
    with pytest.raises(DownloadError, match="no timeframe '7h'"):
        download_ohlcv("binance", "BTC/USDT", "7h", out=tmp_path / "x.csv", urls=server.base_url)


def test_refuses_foreign_file(server: FakeBinance, tmp_path: Path) -> None:
    out = tmp_path / "other.csv"
    out.write_text("open_time,open,high,low,close,volume\n2024-01-01 00:00:00,1,1,1,1,1\n")
    with pytest.raises(DownloadError, match="not written by download_ohlcv"):
        download_ohlcv("binance", "BTC/USDT", "1h", out=out, urls=server.base_url)


def test_download_main(server: FakeBinance, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.csv"
    rc = download_main(
        "binance", "BTC/USDT", "1h", "2024-02-01", "2024-02-03", str(out), api_url=server.base_url
    )
    assert rc == 0
    df = load_ohlcv(out, min_rows=10)
    assert len(df) == 48 and df.index[0] == pd.Timestamp("2024-02-01", tz="UTC")
    assert "48 new bar(s)" in capsys.readouterr().out
    assert download_main("binance", "BTC/USDT", "1h", "yesterday-ish", None, str(out)) == 2
    assert download_main("nosuchx", "BTC/USDT", "1h", None, None, str(tmp_path / "y.csv")) == 1
    assert "unknown exchange" in capsys.readouterr().err
