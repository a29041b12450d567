"""OHLCV loading, validation, gap handling, alignment and resampling (contract: docs/ml-contracts.md).

`load_ohlcv(path)` returns a frame indexed by a tz-aware UTC ``DatetimeIndex`` named ``timestamp`` (bar OPEN
time, strictly increasing, unique) with float64 columns exactly ``open, high, low, close, volume`` and no NaN.
``df.attrs`` holds ``symbol``, ``venue``, ``timeframe`` (``pd.Timedelta``) and ``source`` (str path), plus a few
informational keys documented on `load_ohlcv`.

Formats read (``.csv``/``.csv.gz``/``.txt``, ``.json``/``.json.gz``, ``.parquet``):

* Binance spot exports (``open_time`` text), Binance kline dumps (``open_time_ms`` or headerless 12-column rows
  with ms/µs epochs; the extra columns are ignored);
* CryptoDataDownload (a disclaimer line before the header, newest-first rows, ``unix`` seconds or ms per row,
  ``Volume BTC``/``Volume USD``: the BASE volume is used and rows whose two volume columns are swapped are
  detected per row and fixed, see `_fix_swapped_volumes`);
* freqtrade CSV (``date`` with ``+00:00``), freqtrade/ccxt JSON candles (list of ``[ms, o, h, l, c, v]``),
  pandas JSON (``orient="columns"`` or ``"records"``);
* backtesting.py's monthly file (unnamed index column of month-END dates, relabelled to the month start so the
  index is the bar open time).

Column names are matched case-insensitively with aliases; timestamps may be s/ms/µs/ns epochs (unit decided per
value from its magnitude) or text (naive text is taken as UTC).

Gaps: `find_gaps` lists missing bars; `fill_gaps` forward-fills only SHORT gaps (<= ``max_bars`` bars) causally
(open = high = low = close = previous close, volume 0) and leaves longer gaps in place, reporting them in
``attrs["unfilled_gaps"]``; `split_at_gaps` cuts a frame into gap-free pieces when a caller needs them.
"""

from __future__ import annotations

import gzip
import io
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chains import wirejson  # bounded JSON (a stdlib-only leaf module)

MAX_JSON_BYTES = 2 << 30  # JSON candle/trade files are read whole; beyond this use CSV or parquet

__all__ = [
    "OHLCV_COLUMNS",
    "DataError",
    "Gap",
    "align",
    "fill_gaps",
    "find_gaps",
    "list_samples",
    "load_ohlcv",
    "load_trades",
    "parse_timeframe",
    "resample",
    "sample_path",
    "split_at_gaps",
]

OHLCV_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
SAMPLE_DIR = Path(__file__).resolve().with_name("sample_data")


class DataError(ValueError):
    """Bad or unreadable market data; the message names the file and the problem."""


# --------------------------------------------------------------------------------------------- column aliases

_TIME_ALIASES: tuple[str, ...] = (
    "timestamp",
    "open_time",
    "open_time_ms",
    "opentime",
    "open_timestamp",
    "unix",
    "unix_timestamp",
    "time",
    "datetime",
    "date",
    "ts",
    "t",
    "time_period_start",
    "candle_begin_time",
    "start",
    "bar_time",
)
_PRICE_ALIASES: dict[str, tuple[str, ...]] = {
    "open": ("open", "o", "open_price", "price_open", "first"),
    "high": ("high", "h", "high_price", "price_high", "max"),
    "low": ("low", "l", "low_price", "price_low", "min"),
    "close": ("close", "c", "close_price", "price_close", "last"),
}
_VOLUME_ALIASES: tuple[str, ...] = (
    "volume",
    "vol",
    "v",
    "base_volume",
    "volume_base",
    "basevolume",
    "base_asset_volume",
    "volume_traded",
    "volume_from",
)
_QUOTE_VOLUME_NAMES = frozenset(
    {
        "quote_volume",
        "volume_quote",
        "quotevolume",
        "quote_asset_volume",
        "volume_to",
        "volume_usd",
        "volume_currency",
    }
)
_QUOTES: tuple[str, ...] = (
    "FDUSD",
    "USDT",
    "USDC",
    "BUSD",
    "TUSD",
    "USDP",
    "USDD",
    "DAI",
    "UST",
    "USD",
    "EUR",
    "GBP",
    "JPY",
    "AUD",
    "CAD",
    "CHF",
    "TRY",
    "BRL",
    "KRW",
    "BTC",
    "ETH",
    "BNB",
    "XBT",
)
_FIAT_QUOTES = frozenset(q for q in _QUOTES if q not in ("BTC", "ETH", "BNB", "XBT"))
_VENUES: frozenset[str] = frozenset(
    {
        "binance",
        "binanceus",
        "binanceusdm",
        "binancecoinm",
        "bitstamp",
        "coinbase",
        "coinbasepro",
        "coinbaseexchange",
        "kraken",
        "krakenfutures",
        "bitfinex",
        "bybit",
        "okx",
        "okex",
        "kucoin",
        "kucoinfutures",
        "gemini",
        "huobi",
        "htx",
        "gate",
        "gateio",
        "bitmex",
        "deribit",
        "ftx",
        "poloniex",
        "bittrex",
        "bitget",
        "mexc",
        "cryptocom",
        "bitflyer",
        "upbit",
        "bithumb",
        "hyperliquid",
        "dydx",
        "uniswap",
        "sushiswap",
        "curve",
    }
)
_FUTURES_WORDS = frozenset({"futures", "future", "usdm", "perp", "perpetual", "swap", "fapi"})
_TF_RE = re.compile(r"^(\d+)\s*(s|sec|secs|m|min|mins|h|hr|hrs|d|day|days|w|wk|week|weeks)$", re.IGNORECASE)
_FILE_TF = {"d": "1d", "daily": "1d", "hourly": "1h", "minute": "1m", "weekly": "1w", "monthly": None}


def _norm(name: object) -> str:
    text = str(name).strip().lower()
    if text.startswith("unnamed:") or text in ("", "index"):
        return ""
    return re.sub(r"[\s\-./]+", "_", text)


def parse_timeframe(value: str | pd.Timedelta | Any) -> pd.Timedelta:
    """``"1m"`` (minute, ccxt style), ``"5min"``, ``"1h"``, ``"4h"``, ``"1d"``, ``"1w"`` or a Timedelta."""
    if isinstance(value, pd.Timedelta):
        return value
    if not isinstance(value, str):
        return pd.Timedelta(value)
    m = _TF_RE.match(value.strip())
    if not m:
        raise ValueError(f"unknown timeframe {value!r} (use e.g. 1m, 5m, 1h, 4h, 1d, 1w)")
    if m.group(2) == "M":
        raise ValueError(f"unknown timeframe {value!r}: months have no fixed length (use 1d or 1w bars)")
    n, unit = int(m.group(1)), m.group(2).lower()
    unit = {
        "s": "s",
        "sec": "s",
        "secs": "s",
        "m": "min",
        "min": "min",
        "mins": "min",
        "h": "h",
        "hr": "h",
        "hrs": "h",
        "d": "D",
        "day": "D",
        "days": "D",
        "w": "W",
        "wk": "W",
        "week": "W",
        "weeks": "W",
    }[unit]
    if unit == "W":
        return pd.Timedelta(days=7 * n)
    return pd.Timedelta(n, unit=unit)


# --------------------------------------------------------------------------------------------- reading files


def _open_text(path: Path) -> io.TextIOBase:
    if path.name.lower().endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class _Raw:
    frame: pd.DataFrame
    line_offset: int | None  # file line number of data row 1, minus 1 (None when rows are not lines)


def _read_csv(path: Path) -> _Raw:
    with _open_text(path) as fh:
        head = [fh.readline() for _ in range(30)]
    head = [h for h in head if h != ""]
    if not head:
        raise DataError(f"{path}: file is empty")
    delim = ","
    for line in head:
        counts = {d: line.count(d) for d in (",", ";", "\t", "|")}
        best = max(counts, key=lambda d: counts[d])
        if counts[best] >= 3:
            delim = best
            break
    header_idx = None
    for i, line in enumerate(head):
        if line.count(delim) >= 3:
            header_idx = i
            break
    if header_idx is None:
        raise DataError(
            f"{path}: unknown format: no line with at least 4 {delim!r}-separated fields in the first "
            f"{len(head)} lines"
        )
    fields = [f.strip().strip('"') for f in head[header_idx].rstrip("\r\n").split(delim)]
    headerless = all(_is_number(f) for f in fields if f != "")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = pd.read_csv(
                path,
                sep=delim,
                skiprows=header_idx,
                header=None if headerless else 0,
                skipinitialspace=True,
                compression="infer",
                encoding="utf-8-sig",
                low_memory=False,
            )
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError) as exc:
        raise DataError(f"{path}: cannot parse as CSV: {exc}") from exc
    if headerless:
        ncol = frame.shape[1]
        if ncol < 5:
            raise DataError(
                f"{path}: unknown format: headerless rows with {ncol} columns (an OHLCV file needs "
                "timestamp, open, high, low, close[, volume]); trades files go to load_trades()"
            )
        names = ["timestamp", "open", "high", "low", "close", "volume"][:ncol] + [
            f"extra_{i}" for i in range(6, ncol)
        ]
        frame.columns = names
        return _Raw(frame, header_idx)
    return _Raw(frame, header_idx + 1)


def _read_json(path: Path) -> _Raw:
    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as fh:
            obj = wirejson.loads(fh.read(MAX_JSON_BYTES + 1), max_bytes=MAX_JSON_BYTES)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot parse as JSON: {exc}") from exc
    if isinstance(obj, list):
        return _read_json_obj(obj, path)
    if isinstance(obj, dict):
        for key in ("data", "candles", "ohlcv", "result"):
            if key in obj and isinstance(obj[key], list):
                return _read_json_obj(obj[key], path)
        try:
            frame = pd.DataFrame(obj)
        except ValueError as exc:
            raise DataError(f"{path}: unknown JSON layout: {exc}") from exc
        # orient="columns" keeps string row keys: restore numeric row order
        if all(_is_number(str(i)) for i in frame.index[:5]):
            frame.index = frame.index.astype(str).astype(int)
            frame = frame.sort_index()
        return _Raw(frame.reset_index(drop=True), None)
    raise DataError(f"{path}: unknown JSON layout (expected a list of candles or a column mapping)")


def _read_json_obj(rows: list[Any], path: Path) -> _Raw:
    if rows and isinstance(rows[0], list):
        width = len(rows[0])
        first = rows[0][:5]
        if width < 5 or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in first):
            hint = "; this looks like a trades file: use load_trades()" if width >= 6 else ""
            raise DataError(
                f"{path}: unknown format: JSON rows like {rows[0]!r} are not candles "
                f"[time, open, high, low, close, volume]{hint}"
            )
        names = ["timestamp", "open", "high", "low", "close", "volume"][: len(rows[0])]
        names += [f"extra_{i}" for i in range(len(names), len(rows[0]))]
        return _Raw(pd.DataFrame(rows, columns=names), None)
    if rows and isinstance(rows[0], dict):
        return _Raw(pd.DataFrame.from_records(rows), None)
    raise DataError(f"{path}: unknown JSON layout (empty or not candles)")


def _read_any(path: Path) -> _Raw:
    name = path.name.lower()
    base = name[:-3] if name.endswith(".gz") else name
    if base.endswith(".json"):
        return _read_json(path)
    if base.endswith((".csv", ".txt", ".tsv")):
        return _read_csv(path)
    if base.endswith(".parquet"):
        try:
            return _Raw(pd.read_parquet(path).reset_index(), None)
        except (ImportError, ValueError, OSError) as exc:
            raise DataError(f"{path}: cannot read parquet: {exc}") from exc
    raise DataError(f"{path}: unknown format: expected .csv, .csv.gz, .json, .json.gz or .parquet")


# --------------------------------------------------------------------------------------------- timestamps


def _epoch_to_ns(values: np.ndarray) -> np.ndarray:
    """Numeric epochs to int64 ns; the unit is decided per value by magnitude (s < 1e11 <= ms < 1e14 <= µs < 1e17)."""
    v = values.astype("float64")
    mag = np.abs(v)
    factor = np.where(mag < 1e11, 1e9, np.where(mag < 1e14, 1e6, np.where(mag < 1e17, 1e3, 1.0)))
    if values.dtype.kind in "iu":
        ints: np.ndarray = values.astype("int64") * factor.astype("int64")
        return ints
    rounded: np.ndarray = np.round(v * factor).astype("int64")
    return rounded


def _parse_text_times(col: pd.Series) -> pd.Series:
    text = col.astype(str).str.strip()
    for fmt in ("ISO8601", None):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if fmt is None:
                    parsed = pd.to_datetime(text, utc=True, format="mixed")
                else:
                    parsed = pd.to_datetime(text, utc=True, format=fmt)
            return parsed
        except (ValueError, TypeError, OverflowError):
            continue
    return pd.to_datetime(text, utc=True, errors="coerce", format="mixed")


def _time_column(frame: pd.DataFrame, cols: Mapping[str, Any]) -> tuple[Any, pd.Series] | None:
    """Pick the bar-open time column: numeric epoch candidates first, then parseable text."""
    candidates = [cols[a] for a in _TIME_ALIASES if a in cols]
    if "" in cols and cols[""] not in candidates:
        candidates.append(cols[""])
    numeric = [c for c in candidates if pd.api.types.is_numeric_dtype(frame[c]) and frame[c].notna().any()]
    for c in numeric:
        if c == cols.get("") and frame[c].max() < 1e8:  # a plain 0..n row index, not epochs
            continue
        return c, frame[c]
    for c in candidates:
        if pd.api.types.is_numeric_dtype(frame[c]):
            continue
        return c, frame[c]
    return None


# --------------------------------------------------------------------------------------------- names


def _split_pair(token: str) -> str | None:
    t = token.upper()
    if "/" in t:
        return t
    for q in _QUOTES:
        if t.endswith(q) and len(t) > len(q) and t[: -len(q)].isalnum():
            base = t[: -len(q)]
            if base.isdigit():
                return None
            return f"{base}/{q}"
    return None


def _tokens(text: str) -> list[str]:
    return [t for t in re.split(r"[_\-\s.]+", text) if t]


def _stem(path: Path) -> str:
    name = path.name
    for ext in (".gz", ".csv", ".json", ".txt", ".tsv", ".parquet"):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
    return name


def _infer_venue(path: Path) -> str:
    for part in (_stem(path), path.parent.name):
        toks = [t.lower() for t in _tokens(part)]
        for tok in toks:
            if tok in _VENUES:
                if tok == "binance" and _FUTURES_WORDS.intersection(toks):
                    return "binanceusdm"
                return tok
    return "unknown"


_FREQTRADE_RE = re.compile(
    r"^(?P<base>[A-Za-z0-9]+)_(?P<quote>[A-Za-z0-9]+)(?:_(?P<settle>[A-Za-z0-9]+))?-(?:\d+[smhdwM]|trades)"
)


def _infer_symbol(path: Path) -> str | None:
    stem = _stem(path)
    m = _FREQTRADE_RE.match(stem)
    if m:
        sym = f"{m['base'].upper()}/{m['quote'].upper()}"
        return f"{sym}:{m['settle'].upper()}" if m["settle"] else sym
    toks = [
        t
        for t in _tokens(stem)
        if t.isalnum()
        and not t.isdigit()
        and t.lower() not in _VENUES
        and not _TF_RE.match(t)
        and len(t) <= 14
    ]
    for tok in sorted(toks, key=lambda t: not t.isupper()):  # upper-case tokens (BTCUSDT) first
        pair = _split_pair(tok)
        if pair:
            return pair
    return None


def _infer_file_timeframe(path: Path) -> pd.Timedelta | None:
    for tok in _tokens(_stem(path)):
        low = tok.lower()
        if low in _FILE_TF:
            tf = _FILE_TF[low]
            return parse_timeframe(tf) if tf else None
        if re.fullmatch(r"\d+[smhdw]", low):
            return parse_timeframe(low)
    return None


def _single_value(frame: pd.DataFrame, cols: Mapping[str, Any], names: Iterable[str]) -> str | None:
    for n in names:
        if n in cols:
            vals = frame[cols[n]].dropna().astype(str).str.strip().unique()
            if len(vals) == 1 and vals[0]:
                return str(vals[0])
    return None


# --------------------------------------------------------------------------------------------- volume


def _volume_columns(
    cols: Mapping[str, Any],
    base: str | None,
    quote: str | None,
) -> tuple[Any | None, Any | None]:
    """(base-volume column, quote-volume column or None)."""
    for a in _VOLUME_ALIASES:
        if a in cols:
            return cols[a], None
    suffixed = {
        k[len("volume_") :].upper(): v
        for k, v in cols.items()
        if k.startswith("volume_") and k not in ("volume_base", "volume_quote")
    }
    if not suffixed:
        return None, None
    b = base.upper() if base else None
    q = quote.upper() if quote else None
    if b and b in suffixed:
        return suffixed[b], suffixed.get(q) if q else None
    if len(suffixed) == 2:
        names = list(suffixed)
        fiat = [n for n in names if n in _FIAT_QUOTES]
        if len(fiat) == 1:
            other = next(n for n in names if n != fiat[0])
            return suffixed[other], suffixed[fiat[0]]
    if len(suffixed) == 1:
        only = next(iter(suffixed))
        if only not in ("USD", "USDT", "USDC", "EUR") or (b is None and q is None):
            return suffixed[only], None
    return None, None


def _fix_swapped_volumes(vb: np.ndarray, vq: np.ndarray, close: np.ndarray) -> tuple[np.ndarray, int]:
    """Per row, keep (base, quote) if ``quote ≈ base·close``, swap if ``base ≈ quote·close`` (whichever is nearer
    in log space). CryptoDataDownload's Bitstamp files have the two columns swapped in their oldest rows (in
    several separate stretches), so the test is done row by row. Rows with a zero/NaN volume are left alone."""
    ok = (vb > 0) & (vq > 0) & (close > 0) & np.isfinite(vb) & np.isfinite(vq)
    with np.errstate(divide="ignore", invalid="ignore"):
        keep_err = np.abs(np.log(vq / (vb * close)))
        swap_err = np.abs(np.log(vb / (vq * close)))
    swap = ok & (swap_err < keep_err)
    fixed = np.where(swap, vq, vb)
    return fixed, int(swap.sum())


# --------------------------------------------------------------------------------------------- loading


def _row_ref(i: int, line_offset: int | None) -> str:
    """1-based data row (in file order) and, for text files, the file line."""
    if line_offset is None:
        return f"row {i + 1}"
    return f"row {i + 1} (line {i + 1 + line_offset})"


def load_ohlcv(
    path: str | Path, *, symbol: str | None = None, venue: str | None = None, min_rows: int = 50
) -> pd.DataFrame:
    """Load and validate one OHLCV file (see the module docstring for the formats).

    ``symbol``/``venue`` default to a single-valued ``symbol``/``venue``/``exchange`` column, else to what the
    file name says (``Binance_BTCUSDT_1h…`` → ``BTC/USDT``, ``binance``; freqtrade ``XRP_USDT_USDT-1h…`` →
    ``XRP/USDT:USDT``; a parent folder naming an exchange also counts), else the file stem and ``"unknown"``.
    ``timeframe`` is the median bar spacing.

    Extra ``attrs``: ``rows_reversed`` (newest-first file flipped), ``volume_swapped_rows`` (base/quote volume
    columns found swapped and fixed), ``volume_missing`` (no volume data: volume set to 0), ``relabelled``
    (month-end labels moved to month starts).

    Raises `DataError` naming the file and the problem: unknown format, missing columns (listing those found),
    unparseable timestamps, shuffled rows (first offending row), duplicate timestamps, NaN/non-numeric values
    (column and count), non-positive prices, high/low inconsistent with open/close, negative volume, too few
    rows.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: file not found")
    if p.is_dir():
        raise DataError(f"{p}: is a directory, expected an OHLCV file")
    raw = _read_any(p)
    frame, line_offset = raw.frame, raw.line_offset
    cols: dict[str, Any] = {}
    for c in frame.columns:
        cols.setdefault(_norm(c), c)
    found = [str(c) for c in frame.columns]

    missing = [k for k, aliases in _PRICE_ALIASES.items() if not any(a in cols for a in aliases)]
    tcol = _time_column(frame, cols)
    if tcol is None:
        missing.insert(0, "timestamp")
    if missing:
        hint = ""
        if {"price", "amount"} <= set(cols):
            hint = "; this looks like a trades file: use load_trades()"
        raise DataError(f"{p}: missing column(s) {', '.join(missing)}; found columns: {found}{hint}")
    assert tcol is not None

    data_symbol = _single_value(frame, cols, ("symbol", "pair", "market", "ticker"))
    sym = symbol or (data_symbol.upper() if data_symbol and "/" in data_symbol else None) or _infer_symbol(p)
    if sym is None and data_symbol:
        sym = _split_pair(data_symbol) or data_symbol
    if sym is None:
        sym = _stem(p)
    ven = venue or _single_value(frame, cols, ("venue", "exchange")) or _infer_venue(p)
    ven = ven.lower()
    base, quote = ([*sym.split(":")[0].split("/"), ""])[:2] if "/" in sym else (None, None)

    n = len(frame)
    if n == 0:
        raise DataError(f"{p}: no data rows")

    # -- timestamps
    tname, tser = tcol
    if pd.api.types.is_numeric_dtype(tser):
        if tser.isna().any():
            first_bad = int(np.flatnonzero(tser.isna().to_numpy())[0])
            raise DataError(
                f"{p}: column {tname!r} has {int(tser.isna().sum())} empty timestamp(s), first at "
                f"{_row_ref(first_bad, line_offset)}"
            )
        ns = _epoch_to_ns(tser.to_numpy())
    else:
        parsed = _parse_text_times(tser)
        if parsed.isna().any():
            first_bad = int(np.flatnonzero(parsed.isna().to_numpy())[0])
            raise DataError(
                f"{p}: column {tname!r} has {int(parsed.isna().sum())} unparseable timestamp(s), first "
                f"{tser.iloc[first_bad]!r} at {_row_ref(first_bad, line_offset)}"
            )
        ns = parsed.dt.as_unit("ns").astype("int64").to_numpy()

    # -- values
    out: dict[str, np.ndarray] = {}
    for key, aliases in _PRICE_ALIASES.items():
        src = next(cols[a] for a in aliases if a in cols)
        out[key] = pd.to_numeric(frame[src], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    vcol, qcol = _volume_columns(cols, base, quote)
    volume_missing = False
    swapped = 0
    if vcol is None:
        out["volume"] = np.zeros(n)
        volume_missing = True
    else:
        vol = pd.to_numeric(frame[vcol], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        if np.isnan(vol).all():
            vol = np.zeros(n)
            volume_missing = True
        elif qcol is not None:
            vq = pd.to_numeric(frame[qcol], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
            vol, swapped = _fix_swapped_volumes(vol, vq, out["close"])
        out["volume"] = vol
    for key in OHLCV_COLUMNS:
        nan = np.isnan(out[key])
        if nan.any():
            first = int(np.flatnonzero(nan)[0])
            raise DataError(
                f"{p}: column {key!r} has {int(nan.sum())} NaN, empty or non-numeric value(s), first at "
                f"{_row_ref(first, line_offset)}"
            )

    # -- order: a newest-first file is reversed as a whole; anything else unsorted is an error
    order = np.arange(n)
    reversed_rows = False
    if n > 1:
        d = np.diff(ns)
        if (d <= 0).all() and (d < 0).any():
            order = order[::-1]
            ns = ns[::-1]
            reversed_rows = True
            d = np.diff(ns)
        dup = np.flatnonzero(d == 0)
        if dup.size:
            i = int(order[dup[0] + 1])
            j = int(order[dup[0]])
            ts = pd.Timestamp(ns[dup[0]], tz="UTC")
            raise DataError(
                f"{p}: duplicate timestamp {ts} ({dup.size} duplicate(s)), at "
                f"{_row_ref(min(i, j), line_offset)} and {_row_ref(max(i, j), line_offset)}"
            )
        back = np.flatnonzero(d < 0)
        if back.size:
            k = int(back[0] + 1)
            raise DataError(
                f"{p}: timestamps not sorted: {_row_ref(int(order[k]), line_offset)} "
                f"({pd.Timestamp(ns[k], tz='UTC')}) comes before the previous row "
                f"({pd.Timestamp(ns[k - 1], tz='UTC')}); {back.size} row(s) out of order"
            )
    values = {k: v[order] for k, v in out.items()}

    # -- price sanity
    for key in ("open", "high", "low", "close"):
        bad = np.flatnonzero(values[key] <= 0)
        if bad.size:
            hint = " (a funding-rate series is not price OHLCV)" if "funding" in p.name.lower() else ""
            raise DataError(
                f"{p}: non-positive {key} price in {bad.size} row(s), first "
                f"{float(values[key][bad[0]])!r} at {_row_ref(int(order[bad[0]]), line_offset)}{hint}"
            )
    o, h, lo, c = values["open"], values["high"], values["low"], values["close"]
    tol = 1e-9 * np.maximum(np.abs(h), 1.0)
    bad = np.flatnonzero((h + tol < lo) | (h + tol < np.maximum(o, c)) | (lo - tol > np.minimum(o, c)))
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"{p}: inconsistent OHLC in {bad.size} row(s) (need low <= open, close <= high), first at "
            f"{_row_ref(int(order[i]), line_offset)}: open={o[i]} high={h[i]} low={lo[i]} close={c[i]}"
        )
    bad = np.flatnonzero(values["volume"] < 0)
    if bad.size:
        raise DataError(
            f"{p}: negative volume in {bad.size} row(s), first at {_row_ref(int(order[bad[0]]), line_offset)}"
        )
    if n < min_rows:
        raise DataError(f"{p}: too few rows: {n} < min_rows={min_rows}")

    index = pd.DatetimeIndex(pd.to_datetime(ns, utc=True), name="timestamp").as_unit("ns")
    relabelled = None
    if n >= 2 and index.is_month_end.all() and (index.normalize() == index).all():
        spacing = pd.Series(index).diff().dropna().median()
        if pd.Timedelta(days=27) <= spacing <= pd.Timedelta(days=32):
            index = pd.DatetimeIndex(
                index.tz_convert(None).to_period("M").start_time.tz_localize("UTC"), name="timestamp"
            )
            index = index.as_unit("ns")
            relabelled = "month_end_to_month_start"
    df = pd.DataFrame({k: values[k] for k in OHLCV_COLUMNS}, index=index)
    df.attrs.update(
        {
            "symbol": sym,
            "venue": ven,
            "timeframe": _median_spacing(df.index) or _infer_file_timeframe(p) or pd.NaT,
            "source": str(p),
            "rows_reversed": reversed_rows,
            "volume_swapped_rows": swapped,
            "volume_missing": volume_missing,
        }
    )
    if relabelled:
        df.attrs["relabelled"] = relabelled
    return df


def _median_spacing(index: pd.DatetimeIndex) -> pd.Timedelta | None:
    if len(index) < 2:
        return None
    diffs = np.diff(index.asi8)
    return pd.Timedelta(int(np.median(diffs)), unit="ns")


def _timeframe(df: pd.DataFrame) -> pd.Timedelta:
    tf = df.attrs.get("timeframe")
    if isinstance(tf, pd.Timedelta) and not pd.isna(tf):
        return tf
    if isinstance(tf, str):
        return parse_timeframe(tf)
    med = _median_spacing(pd.DatetimeIndex(df.index))
    if med is None:
        raise DataError(
            f"{df.attrs.get('source', '<frame>')}: cannot tell the timeframe of fewer than 2 rows"
        )
    return med


def load_trades(path: str | Path) -> pd.DataFrame:
    """Public trades (freqtrade/ccxt ``timestamp,id,type,side,price,amount,cost`` CSV or JSON rows).

    Returns a frame indexed by a UTC ``DatetimeIndex`` named ``timestamp`` (sorted, NOT unique: trades share
    milliseconds) with float64 ``price``, ``amount`` and ``side`` (+1 buy, -1 sell, 0 unknown).
    """
    p = Path(path)
    name = p.name.lower()
    base = name[:-3] if name.endswith(".gz") else name
    if base.endswith(".json"):
        opener = gzip.open if name.endswith(".gz") else open
        with opener(p, "rb") as fh:
            rows = wirejson.loads(fh.read(MAX_JSON_BYTES + 1), max_bytes=MAX_JSON_BYTES)
        frame = (
            pd.DataFrame(
                rows, columns=["timestamp", "id", "type", "side", "price", "amount", "cost"][: len(rows[0])]
            )
            if rows and isinstance(rows[0], list)
            else pd.DataFrame.from_records(rows)
        )
    else:
        frame = pd.read_csv(p, skipinitialspace=True, compression="infer")
    cols = {_norm(c): c for c in frame.columns}
    need = [c for c in ("timestamp", "price", "amount") if c not in cols]
    if need:
        raise DataError(
            f"{p}: missing trade column(s) {', '.join(need)}; found columns: "
            f"{[str(c) for c in frame.columns]}"
        )
    ts = frame[cols["timestamp"]]
    if pd.api.types.is_numeric_dtype(ts):
        ns = _epoch_to_ns(ts.to_numpy())
    else:
        ns = _parse_text_times(ts).dt.as_unit("ns").astype("int64").to_numpy()
    side = (
        (
            frame[cols["side"]]
            .astype(str)
            .str.strip()
            .str.lower()
            .map({"buy": 1.0, "sell": -1.0})
            .fillna(0.0)
            .to_numpy(dtype="float64")
        )
        if "side" in cols
        else np.zeros(len(frame))
    )
    out = pd.DataFrame(
        {
            "price": pd.to_numeric(frame[cols["price"]], errors="coerce").to_numpy(dtype="float64"),
            "amount": pd.to_numeric(frame[cols["amount"]], errors="coerce").to_numpy(dtype="float64"),
            "side": side,
        },
        index=pd.DatetimeIndex(pd.to_datetime(ns, utc=True), name="timestamp").as_unit("ns"),
    )
    if out[["price", "amount"]].isna().any().any():
        raise DataError(
            f"{p}: NaN or non-numeric price/amount in {int(out.isna().any(axis=1).sum())} trade(s)"
        )
    out = out.sort_index(kind="stable")
    out.attrs.update({"symbol": _infer_symbol(p) or _stem(p), "venue": _infer_venue(p), "source": str(p)})
    return out


# --------------------------------------------------------------------------------------------- gaps


@dataclass(frozen=True)
class Gap:
    """Missing bars between two present bars: ``start``/``end`` are the open times of the first and last missing
    bar (inclusive), ``missing`` how many bars are missing."""

    start: pd.Timestamp
    end: pd.Timestamp
    missing: int

    @property
    def missing_bars(self) -> int:
        return self.missing


def find_gaps(df: pd.DataFrame) -> list[Gap]:
    """Gaps in a bar series: a step of k·timeframe (rounded) with k >= 2 means k-1 missing bars."""
    if len(df) < 2:
        return []
    tf = _timeframe(df)
    idx = pd.DatetimeIndex(df.index)
    steps = np.diff(idx.asi8)
    k = np.rint(steps / tf.value).astype("int64")
    gaps = []
    for i in np.flatnonzero(k >= 2):
        m = int(k[i] - 1)
        gaps.append(Gap(start=idx[i] + tf, end=idx[i] + m * tf, missing=m))
    return gaps


def fill_gaps(df: pd.DataFrame, max_bars: int = 3) -> pd.DataFrame:
    """Fill gaps of at most ``max_bars`` missing bars with flat bars at the previous close and zero volume.

    Causal: each inserted bar uses only the bar before it. Longer gaps are LEFT in place (nothing invented over a
    long outage) and listed in ``attrs["unfilled_gaps"]``; ``attrs["filled_bars"]`` counts inserted bars. Use
    `split_at_gaps` for gap-free pieces.
    """
    gaps = find_gaps(df)
    attrs = dict(df.attrs)
    short = [g for g in gaps if g.missing <= max_bars]
    long_ = [g for g in gaps if g.missing > max_bars]
    if not short:
        out = df.copy()
    else:
        tf = _timeframe(df)
        new_index = [g.start + j * tf for g in short for j in range(g.missing)]
        add = pd.DataFrame(
            np.nan, index=pd.DatetimeIndex(new_index, name=df.index.name).as_unit("ns"), columns=df.columns
        )
        out = pd.concat([df, add]).sort_index()
        prev_close = out["close"].ffill()
        hole = out["open"].isna()
        for col in ("open", "high", "low", "close"):
            out.loc[hole, col] = prev_close[hole]
        out.loc[hole, "volume"] = 0.0
        out = out.astype("float64")
    attrs["filled_bars"] = sum(g.missing for g in short)
    attrs["unfilled_gaps"] = long_
    out.attrs = attrs
    return out


def split_at_gaps(df: pd.DataFrame, min_missing: int = 1) -> list[pd.DataFrame]:
    """Cut ``df`` at every gap of at least ``min_missing`` missing bars; returns the pieces in order."""
    gaps = [g for g in find_gaps(df) if g.missing >= min_missing]
    pieces = []
    start = None
    for g in gaps:
        piece = df.loc[start : g.start - pd.Timedelta(1, "ns")] if start is not None else df.loc[: g.start]
        pieces.append(piece)
        start = g.end + pd.Timedelta(1, "ns")
    pieces.append(df.loc[start:] if start is not None else df)
    out = []
    for piece in pieces:
        piece = piece.copy()
        piece.attrs = dict(df.attrs)
        out.append(piece)
    return out


# --------------------------------------------------------------------------------------------- align / resample


def align(frames: Mapping[str, pd.DataFrame], how: str = "inner") -> dict[str, pd.DataFrame]:
    """Put several bar series on one common index.

    ``how="inner"``: keep only timestamps present in every frame. ``how="outer"``: union of timestamps from the
    latest first bar on (so nothing precedes a frame's history); missing bars are forward-filled causally (flat at
    the previous close, volume 0). Each returned frame carries ``attrs["align"]`` = ``{"how", "rows", "dropped",
    "filled"}`` — the report of rows dropped from (or filled into) that input. Frames with different timeframes
    are refused (resample first).
    """
    if how not in ("inner", "outer"):
        raise ValueError(f"align: how must be 'inner' or 'outer', not {how!r}")
    if not frames:
        return {}
    tfs = {k: _timeframe(v) for k, v in frames.items()}
    if len(set(tfs.values())) > 1:
        desc = ", ".join(f"{k}={v}" for k, v in tfs.items())
        raise DataError(f"align: frames have different timeframes ({desc}); resample() them to one first")
    indexes = [pd.DatetimeIndex(f.index) for f in frames.values()]
    if how == "inner":
        common = indexes[0]
        for ix in indexes[1:]:
            common = common.intersection(ix)
    else:
        common = indexes[0]
        for ix in indexes[1:]:
            common = common.union(ix)
        lo = max(ix[0] for ix in indexes if len(ix))
        common = common[common >= lo]
    common = common.sort_values()
    if len(common) == 0:
        raise DataError(f"align: no common timestamps across {list(frames)}")
    out: dict[str, pd.DataFrame] = {}
    for key, f in frames.items():
        present = f.index.isin(common)
        g = f.reindex(common)
        hole = g["close"].isna()
        if hole.any():
            prev = g["close"].ffill()
            for col in ("open", "high", "low", "close"):
                g.loc[hole, col] = prev[hole]
            g.loc[hole, "volume"] = 0.0
        g = g.astype("float64")
        g.attrs = dict(f.attrs)
        g.attrs["align"] = {
            "how": how,
            "rows": len(g),
            "dropped": int((~present).sum()),
            "filled": int(hole.sum()),
        }
        out[key] = g
    return out


def resample(df: pd.DataFrame, timeframe: str | pd.Timedelta, *, drop_partial: bool = True) -> pd.DataFrame:
    """Aggregate bars to a coarser timeframe (open first, high max, low min, close last, volume sum).

    Buckets are ``[T, T + timeframe)`` labelled by their open time T, aligned to the Unix epoch (weeks start on
    Monday) so every source lands in the same buckets; a bucket only uses bars inside it (causal: it is known at
    T + timeframe, like any bar). With ``drop_partial`` an incomplete first or last bucket (missing sub-bars at the
    edges of the data, e.g. the bar still forming) is dropped; empty buckets are never produced.
    """
    target = parse_timeframe(timeframe)
    src = _timeframe(df)
    if target < src or target.value % src.value:
        raise DataError(f"resample: target {target} must be a multiple of the source timeframe {src}")
    origin = (
        pd.Timestamp("1970-01-05", tz="UTC")
        if target.value % pd.Timedelta(days=7).value == 0
        else pd.Timestamp("1970-01-01", tz="UTC")
    )
    r = df.resample(target, label="left", closed="left", origin=origin)
    out = pd.DataFrame(
        {
            "open": r["open"].first(),
            "high": r["high"].max(),
            "low": r["low"].min(),
            "close": r["close"].last(),
            "volume": r["volume"].sum(),
        }
    )
    count = r["close"].count()
    out = out[count > 0]
    count = count[count > 0]
    if drop_partial and len(out):
        per = target.value // src.value
        keep = np.ones(len(out), dtype=bool)
        if count.iloc[0] < per:
            keep[0] = False
        if count.iloc[-1] < per:
            keep[-1] = False
        out = out[keep]
    out = out.astype("float64")
    out.index.name = "timestamp"
    out.attrs = dict(df.attrs)
    out.attrs["timeframe"] = target
    return out


# --------------------------------------------------------------------------------------------- sample data


def list_samples() -> list[str]:
    """Names of the data files shipped in ``ml/sample_data/`` (see its SOURCES.md)."""
    if not SAMPLE_DIR.is_dir():
        return []
    return sorted(
        p.name
        for p in SAMPLE_DIR.iterdir()
        if p.is_file() and not p.name.startswith(("_", ".")) and not p.name.endswith((".md", ".py"))
    )


def sample_path(name: str) -> Path:
    """Path of a shipped sample file: its full name, or any unambiguous prefix (``"Binance_BTCUSDT_1h"``)."""
    names = list_samples()
    if name in names:
        return SAMPLE_DIR / name
    hits = [n for n in names if n.startswith(name) or n.lower().startswith(name.lower())]
    if len(hits) == 1:
        return SAMPLE_DIR / hits[0]
    what = "ambiguous" if hits else "unknown"
    raise FileNotFoundError(f"{what} sample {name!r}; available: {names}")
