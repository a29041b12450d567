"""Download OHLCV bars from an exchange through ccxt, resumably, into a CSV that `ml.data.load_ohlcv` reads.

`download_ohlcv` pages through ``fetch_ohlcv`` by ``since`` with the exchange's page limit, lets ccxt pace the
requests (``enableRateLimit``), retries ``ccxt.NetworkError`` (including ``RateLimitExceeded``/HTTP 429) with
exponential back-off, and RESUMES: when ``out`` exists it continues after the last bar in the file (a torn last
line from an interrupted run is cut off first), so repeated runs never duplicate or skip bars.

Only COMPLETE bars are written (a bar whose close time is still in the future is left for the next run), and the
range is ``[since, until)`` by bar open time. Without ``since`` a new file starts at the first bar the exchange
has (``since=0``).

Output columns: ``timestamp`` (ms epoch, bar open), ``date`` (ISO UTC), ``open, high, low, close, volume``,
``symbol`` (ccxt unified), ``venue`` (the ccxt exchange id).

`download_main` is what ``mevsuite data download`` calls.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import ccxt
import pandas as pd

__all__ = [
    "CSV_HEADER",
    "DownloadError",
    "download_main",
    "download_ohlcv",
    "rewrite_api_urls",
    "to_ms",
]

CSV_HEADER: tuple[str, ...] = (
    "timestamp",
    "date",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "symbol",
    "venue",
)
_MAX_BACKOFF_S = 60.0

ProgressFn = Callable[[int, pd.Timestamp], None]


class DownloadError(RuntimeError):
    """Download failed; the message names the exchange (and the URL for network failures)."""


# --------------------------------------------------------------------------------------------- helpers


def to_ms(value: Any) -> int | None:
    """``None``, ms epoch int, ``datetime``/``date``/``pd.Timestamp`` or a date string (UTC if naive) → ms."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError(f"not a time: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"cannot read {value!r} as a time (use e.g. 2024-01-01 or 2024-01-01T12:00Z)"
        ) from exc
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value // 1_000_000)


def rewrite_api_urls(api: Any, base_url: str) -> Any:
    """Every URL in a ccxt ``urls['api']`` value (str or nested dict) moved to ``base_url``, keeping its path.

    ``https://api.binance.com/api/v3`` with ``http://127.0.0.1:8080`` → ``http://127.0.0.1:8080/api/v3``;
    a path in ``base_url`` is kept as a prefix.
    """
    base = base_url.rstrip("/")
    if isinstance(api, str):
        parts = urlsplit(api)
        if not parts.scheme:
            return api
        return base + parts.path + (f"?{parts.query}" if parts.query else "")
    if isinstance(api, Mapping):
        return {k: rewrite_api_urls(v, base) for k, v in api.items()}
    return api


def _merge(dst: dict[str, Any], src: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(dst)
    for k, v in src.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _merge(dict(out[k]), v)
        else:
            out[k] = v
    return out


def _make_exchange(
    exchange_id: str, exchange_options: Mapping[str, Any] | None, urls: Mapping[str, Any] | str | None
) -> Any:
    cls = getattr(ccxt, exchange_id, None)
    if not (isinstance(cls, type) and issubclass(cls, ccxt.Exchange)) or exchange_id not in ccxt.exchanges:
        raise DownloadError(f"unknown exchange {exchange_id!r} (ccxt ids, e.g. binance, bitstamp, kraken)")
    config: dict[str, Any] = {"enableRateLimit": True}
    config.update(exchange_options or {})
    ex = cls(config)
    if urls is not None:
        if isinstance(urls, str):
            ex.urls["api"] = rewrite_api_urls(ex.urls["api"], urls)
        else:
            api = ex.urls["api"]
            ex.urls["api"] = _merge(dict(api), urls) if isinstance(api, Mapping) else dict(urls)
    return ex


def _first_url(ex: Any) -> str:
    api = ex.urls.get("api")
    while isinstance(api, Mapping) and api:
        api = api.get("public", next(iter(api.values())))
    return str(api)


class _Caller:
    """Runs exchange calls with retries; before the first successful call a connection failure is final."""

    def __init__(self, ex: Any, exchange_id: str, max_retries: int, retry_delay: float) -> None:
        self.ex = ex
        self.exchange_id = exchange_id
        self.max_retries = max_retries
        self.retry_delay = retry_delay
        self.contacted = False
        self.retries = 0

    def __call__(self, what: str, fn: Callable[[], Any]) -> Any:
        attempt = 0
        while True:
            try:
                result = fn()
            except (ccxt.RateLimitExceeded, ccxt.DDoSProtection, ccxt.NetworkError) as exc:
                url = getattr(self.ex, "last_request_url", None) or _first_url(self.ex)
                limited = isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection)
                unreachable = type(exc) in (ccxt.NetworkError, ccxt.RequestTimeout)
                if not self.contacted and unreachable and not limited:
                    raise DownloadError(
                        f"cannot reach {self.exchange_id} at {url} ({what}): {type(exc).__name__}: {exc}. "
                        "No network? Point at a mirror or a local server with --api-url / urls=."
                    ) from exc
                if attempt >= self.max_retries:
                    raise DownloadError(
                        f"{self.exchange_id} {what} failed after {attempt + 1} attempt(s) at {url}: "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
                delay = min(self.retry_delay * (2**attempt), _MAX_BACKOFF_S)
                if limited:
                    delay = max(delay, self._retry_after())
                attempt += 1
                self.retries += 1
                time.sleep(delay)
                continue
            except ccxt.BadSymbol as exc:
                raise DownloadError(f"{self.exchange_id}: {exc}") from exc
            except ccxt.BaseError as exc:
                url = getattr(self.ex, "last_request_url", None) or _first_url(self.ex)
                raise DownloadError(
                    f"{self.exchange_id} {what} failed at {url}: {type(exc).__name__}: {exc}"
                ) from exc
            self.contacted = True
            return result

    def _retry_after(self) -> float:
        headers = getattr(self.ex, "last_response_headers", None) or {}
        for key, val in dict(headers).items():
            if str(key).lower() == "retry-after":
                with contextlib.suppress(TypeError, ValueError):
                    return min(float(val), _MAX_BACKOFF_S)
        return 0.0


def _resume_point(out: Path, symbol: str, exchange_id: str) -> int | None:
    """Last bar open time (ms) in an existing output file, after cutting a torn last line; None if empty/new."""
    if not out.exists() or out.stat().st_size == 0:
        return None
    with open(out, "rb+") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        chunk = min(size, 1 << 16)
        fh.seek(size - chunk)
        tail = fh.read(chunk)
        if not tail.endswith(b"\n"):  # torn write from an interrupted run: drop the partial line
            cut = tail.rfind(b"\n")
            new_size = size - chunk + cut + 1 if cut >= 0 else 0
            fh.truncate(new_size)
            tail = tail[: cut + 1] if cut >= 0 else b""
        fh.seek(0)
        header = fh.readline().decode("utf-8").strip()
    if not header:
        return None
    if tuple(header.split(",")) != CSV_HEADER:
        raise DownloadError(
            f"{out} exists but was not written by download_ohlcv (header {header!r}); choose another --out"
        )
    lines = [ln for ln in tail.decode("utf-8", "replace").splitlines() if ln.strip()]
    if not lines or lines[-1].strip() == header:
        return None
    fields = lines[-1].split(",")
    try:
        last = int(fields[0])
    except ValueError as exc:
        raise DownloadError(f"{out}: cannot read the last row {lines[-1]!r} to resume") from exc
    if len(fields) >= 9 and (fields[7] != symbol or fields[8] != exchange_id):
        raise DownloadError(
            f"{out} holds {fields[7]} on {fields[8]}, not {symbol} on {exchange_id}; choose another --out"
        )
    return last


def _fmt(x: Any) -> str:
    return "0" if x is None else repr(float(x))


# --------------------------------------------------------------------------------------------- download


def download_ohlcv(
    exchange_id: str,
    symbol: str,
    timeframe: str,
    *,
    since: Any = None,
    until: Any = None,
    out: Path,
    exchange_options: Mapping[str, Any] | None = None,
    urls: Mapping[str, Any] | str | None = None,
    progress: ProgressFn | None = None,
    max_retries: int = 5,
    limit: int | None = None,
    retry_delay: float = 1.0,
) -> Path:
    """Download ``symbol`` bars of ``timeframe`` from ``exchange_id`` into ``out`` (CSV), resuming if it exists.

    ``since``/``until``: ms epochs, datetimes or date strings (UTC); bars with open time in ``[since, until)``.
    ``exchange_options``: extra ccxt constructor config (``{"options": {...}, "timeout": ...}``).
    ``urls``: a mapping merged over ``exchange.urls['api']`` (per-key overrides), or a base URL string that every
    ``urls['api']`` entry is moved to (path kept) — e.g. a local mirror or a test server.
    ``progress(new_rows_so_far, last_bar_open_time)`` is called after every page.
    ``limit``: bars per request (default: the exchange's documented maximum, else 500).
    Network errors and rate limits are retried ``max_retries`` times with back-off ``retry_delay·2^k`` seconds
    (honouring ``Retry-After``), except that failing to reach the exchange at all raises at once.
    Raises `DownloadError`; returns ``out``.
    """
    out = Path(out)
    ex = _make_exchange(exchange_id, exchange_options, urls)
    call = _Caller(ex, exchange_id, max_retries, retry_delay)
    if not ex.has.get("fetchOHLCV"):
        raise DownloadError(f"{exchange_id} has no OHLCV endpoint in ccxt (has['fetchOHLCV'] is false)")
    if ex.timeframes and timeframe not in ex.timeframes:
        raise DownloadError(
            f"{exchange_id} has no timeframe {timeframe!r}; it offers {sorted(ex.timeframes)}"
        )
    tf_ms = int(ex.parse_timeframe(timeframe) * 1000)
    since_ms = to_ms(since)
    until_ms = to_ms(until)
    if since_ms is not None and until_ms is not None and until_ms <= since_ms:
        raise DownloadError(f"until ({until}) must be after since ({since})")

    call("load_markets", ex.load_markets)
    if symbol not in ex.markets:
        raise DownloadError(f"{exchange_id} has no market {symbol!r} (e.g. {sorted(ex.markets)[:5]})")
    if limit is None:
        limit = _page_limit(ex, symbol)

    last = _resume_point(out, symbol, exchange_id)
    cursor = since_ms if since_ms is not None else 0
    if last is not None:
        cursor = max(cursor, last + tf_ms)
    out.parent.mkdir(parents=True, exist_ok=True)
    new_file = not out.exists() or out.stat().st_size == 0
    written = 0
    with open(out, "a", encoding="utf-8", newline="") as fh:
        if new_file:
            fh.write(",".join(CSV_HEADER) + "\n")
            fh.flush()
        while until_ms is None or cursor < until_ms:
            now_ms = int(ex.milliseconds())
            if cursor + tf_ms > now_ms:
                break  # no complete bar left
            page = call(
                f"fetch_ohlcv({symbol}, {timeframe}, since={cursor})",
                partial(ex.fetch_ohlcv, symbol, timeframe, since=cursor, limit=limit),
            )
            if not page:
                break
            page_max = max(int(r[0]) for r in page)
            rows = sorted({int(r[0]): r for r in page if int(r[0]) >= cursor}.items())
            keep = [
                (t, r)
                for t, r in rows
                if (last is None or t > last) and (until_ms is None or t < until_ms) and t + tf_ms <= now_ms
            ]
            for t, r in keep:
                if any(v is None for v in r[1:5]):
                    raise DownloadError(f"{exchange_id} returned a bar without prices at {t}: {r!r}")
                stamp = pd.Timestamp(t, unit="ms", tz="UTC").isoformat()
                fh.write(
                    f"{t},{stamp},{_fmt(r[1])},{_fmt(r[2])},{_fmt(r[3])},{_fmt(r[4])},"
                    f"{_fmt(r[5] if len(r) > 5 else None)},{symbol},{exchange_id}\n"
                )
            fh.flush()
            if keep:
                last = keep[-1][0]
                written += len(keep)
                if progress is not None:
                    progress(written, pd.Timestamp(last, unit="ms", tz="UTC"))
            if page_max < cursor or not keep:
                break  # no progress: nothing newer (or only an unfinished bar) is available
            cursor = max(page_max, last if last is not None else page_max) + tf_ms
    return out


def _page_limit(ex: Any, symbol: str) -> int:
    with contextlib.suppress(Exception):
        market = ex.market(symbol)
        kind = "spot" if market.get("spot") else ("swap" if market.get("swap") else market.get("type"))
        feats = (ex.features or {}).get(kind) or {}
        if "fetchOHLCV" not in feats:  # swap/future features are nested one level by linear/inverse
            feats = feats.get("linear") or feats.get("inverse") or {}
        lim = (feats.get("fetchOHLCV") or {}).get("limit")
        if lim:
            return int(lim)
    return 500


# --------------------------------------------------------------------------------------------- CLI entry


def default_out(exchange: str, symbol: str, timeframe: str) -> Path:
    """``binance_BTCUSDT_1h.csv`` style name (load_ohlcv infers venue and symbol back from it)."""
    pair = symbol.split(":")[0].replace("/", "")
    settle = f"_{symbol.split(':')[1]}" if ":" in symbol else ""
    return Path(f"{exchange}_{pair}{settle}_{timeframe}.csv")


def download_main(
    exchange: str,
    symbol: str,
    timeframe: str,
    since: Any = None,
    until: Any = None,
    out: str | Path | None = None,
    api_url: str | None = None,
) -> int:
    """CLI body of ``mevsuite data download``: 0 on success, 1 on a download/data error, 2 on bad arguments."""
    path = Path(out) if out else default_out(exchange, symbol, timeframe)
    try:
        since_ms, until_ms = to_ms(since), to_ms(until)
    except (ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    bar = None
    progress: ProgressFn | None = None
    if sys.stderr.isatty():
        try:
            from tqdm import tqdm
        except ImportError:  # pragma: no cover - tqdm is in the ml extra
            tqdm = None
        if tqdm is not None:
            bar = tqdm(desc=f"{exchange} {symbol} {timeframe}", unit="bar", file=sys.stderr)

            def progress(n: int, last: pd.Timestamp) -> None:
                assert bar is not None
                bar.update(n - bar.n)
                bar.set_postfix_str(str(last))

    before = _count_rows(path)
    try:
        download_ohlcv(
            exchange,
            symbol,
            timeframe,
            since=since_ms,
            until=until_ms,
            out=path,
            urls=api_url,
            progress=progress,
        )
    except DownloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if bar is not None:
            bar.close()
    after = _count_rows(path)
    print(f"{path}: {after - before} new bar(s), {after} in total ({exchange} {symbol} {timeframe})")
    return 0


def _count_rows(path: Path) -> int:
    if not path.exists():
        return 0
    with open(path, "rb") as fh:
        return max(sum(1 for _ in fh) - 1, 0)
