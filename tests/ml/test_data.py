"""ml.data: every real OHLCV format we ship an excerpt of, validation errors, gaps, align, resample, samples."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.data import (
    OHLCV_COLUMNS,
    DataError,
    Gap,
    align,
    fill_gaps,
    find_gaps,
    list_samples,
    load_ohlcv,
    load_trades,
    parse_timeframe,
    resample,
    sample_path,
    split_at_gaps,
)

HERE = Path(__file__).resolve().parent
EXCERPTS = HERE / "data" / "ohlcv"
SHARED = Path(os.environ.get("MEVSUITE_SHARED_DATA", HERE.parents[2] / "shared" / "data"))
H = pd.Timedelta(hours=1)


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def check_contract(df: pd.DataFrame) -> None:
    assert list(df.columns) == list(OHLCV_COLUMNS)
    assert all(df[c].dtype == np.float64 for c in df.columns)
    assert isinstance(df.index, pd.DatetimeIndex) and df.index.name == "timestamp"
    assert str(df.index.tz) == "UTC"
    assert df.index.is_monotonic_increasing and df.index.is_unique
    assert not df.isna().any().any()
    for key in ("symbol", "venue", "timeframe", "source"):
        assert key in df.attrs
    assert isinstance(df.attrs["timeframe"], pd.Timedelta)


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def csv_rows(
    n: int,
    start: str = "2024-01-01",
    step: str = "1h",
    header: str = "timestamp,open,high,low,close,volume",
    epoch_unit: str | None = None,
) -> str:
    idx = pd.date_range(start, periods=n, freq=step, tz="UTC")
    lines = [header]
    for i, t in enumerate(idx):
        o = 100.0 + i
        stamp: object = t.isoformat()
        if epoch_unit:
            stamp = int(t.value // {"s": 10**9, "ms": 10**6, "us": 10**3}[epoch_unit])
        lines.append(f"{stamp},{o},{o + 2},{o - 1},{o + 1},{10 + i}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------- real formats


@pytest.mark.parametrize(
    ("name", "rows", "first", "last", "symbol", "venue", "tf"),
    [
        # CryptoDataDownload: disclaimer line, newest first, unix seconds, Volume BTC / Volume USD
        (
            "Bitstamp_BTCUSD_1h_excerpt.csv",
            72,
            "2020-10-11 00:00",
            "2020-10-13 23:00",
            "BTC/USD",
            "bitstamp",
            "1h",
        ),
        # Binance futures mark price: open_time_ms and 6 extra kline columns
        (
            "BTCUSDT-1h_markprice_excerpt.csv",
            60,
            "2019-12-23 11:00",
            "2019-12-25 22:00",
            "BTC/USDT",
            "unknown",
            "1h",
        ),
        # freqtrade CSV: date with +00:00
        ("XRP_ETH-5m.csv", 80, "2019-10-11 00:00", "2019-10-11 06:35", "XRP/ETH", "unknown", "5m"),
        # freqtrade futures mark CSV: empty volume column
        (
            "XRP_USDT_USDT-1h-mark.csv",
            100,
            "2021-11-15 06:00",
            "2021-11-19 09:00",
            "XRP/USDT:USDT",
            "unknown",
            "1h",
        ),
        # freqtrade JSON candles [[ms, o, h, l, c, v], ...], gzipped
        (
            "XRP_USDT_USDT-1h-futures.json.gz",
            100,
            "2021-11-17 01:00",
            "2021-11-21 04:00",
            "XRP/USDT:USDT",
            "unknown",
            "1h",
        ),
        # pandas orient="columns" JSON with ms dates
        (
            "orderflow_candles_excerpt.json",
            60,
            "2023-01-02 16:45",
            "2023-01-02 21:40",
            "orderflow_candles_excerpt",
            "unknown",
            "5m",
        ),
        # backtesting.py monthly file: unnamed index column of month-end dates, relabelled to the month start
        ("backtesting_py_BTCUSD_monthly.csv", 156, "2012-01-01", "2024-12-01", "BTC/USD", "unknown", "31D"),
    ],
)
def test_excerpts_load(name: str, rows: int, first: str, last: str, symbol: str, venue: str, tf: str) -> None:
    df = load_ohlcv(EXCERPTS / name)
    check_contract(df)
    assert len(df) == rows
    assert df.index[0] == ts(first) and df.index[-1] == ts(last)
    assert df.attrs["symbol"] == symbol and df.attrs["venue"] == venue
    assert df.attrs["timeframe"] == (pd.Timedelta(days=31) if tf == "31D" else parse_timeframe(tf))
    assert df.attrs["source"] == str(EXCERPTS / name)


def test_bitstamp_newest_first_disclaimer_and_swapped_volumes() -> None:
    df = load_ohlcv(EXCERPTS / "Bitstamp_BTCUSD_1h_excerpt.csv")
    assert df.attrs["rows_reversed"] is True
    # rows 2020-10-11 00:00 .. 2020-10-12 08:00 have Volume BTC / Volume USD swapped in the file
    assert df.attrs["volume_swapped_rows"] == 33
    assert df.loc[ts("2020-10-12 08:00"), "volume"] == pytest.approx(139.70)  # file: 1589362.32,139.7
    assert df.loc[ts("2020-10-12 09:00"), "volume"] == pytest.approx(403.96039655)  # file: correct order
    assert (df["volume"] < 5_000).all()  # base (BTC) volume everywhere, never USD
    assert df.loc[ts("2020-10-13 23:00"), "close"] == 11427.98  # first data line of the file (newest)
    assert find_gaps(df) == []


def test_freqtrade_empty_volume_becomes_zero() -> None:
    df = load_ohlcv(EXCERPTS / "XRP_USDT_USDT-1h-mark.csv")
    assert df.attrs["volume_missing"] is True
    assert (df["volume"] == 0).all()


def test_backtesting_monthly_relabelled() -> None:
    df = load_ohlcv(EXCERPTS / "backtesting_py_BTCUSD_monthly.csv")
    assert df.attrs["relabelled"] == "month_end_to_month_start"
    assert df.loc[ts("2012-01-01"), "open"] == 4.58 and df.loc[ts("2024-12-01"), "close"] == 93381.0


def test_symbol_and_venue_arguments_win() -> None:
    df = load_ohlcv(
        EXCERPTS / "BTCUSDT-1h_markprice_excerpt.csv", symbol="BTC/USDT:USDT", venue="BinanceUSDM"
    )
    assert df.attrs["symbol"] == "BTC/USDT:USDT" and df.attrs["venue"] == "binanceusdm"


def test_shipped_samples() -> None:
    names = list_samples()
    assert "Binance_BTCUSDT_1h_2020-10_2024-12.csv.gz" in names
    assert "BinanceUSDM_ETHUSDT_1h_mark_2019-12_2022-12.csv.gz" in names
    assert (sample_path("Binance_BTCUSDT_1h").parent / "SOURCES.md").exists()
    spot = load_ohlcv(sample_path("Binance_BTCUSDT_1h_2020-10_2024-12.csv.gz"))
    check_contract(spot)
    assert len(spot) == 37_090
    assert spot.index[0] == ts("2020-10-07 18:00") and spot.index[-1] == ts("2024-12-31 23:00")
    assert (spot.attrs["symbol"], spot.attrs["venue"], spot.attrs["timeframe"]) == ("BTC/USDT", "binance", H)
    assert spot["close"].iloc[0] == 10664.11
    eth = load_ohlcv(sample_path("BinanceUSDM_ETHUSDT"))
    check_contract(eth)
    assert len(eth) == 26_509
    assert eth.index[0] == ts("2019-12-23 11:00") and eth.index[-1] == ts("2022-12-31 23:00")
    assert (eth.attrs["symbol"], eth.attrs["venue"]) == ("ETH/USDT", "binanceusdm")
    assert (eth["volume"] == 0).all()
    with pytest.raises(FileNotFoundError, match="available"):
        sample_path("nope")


def test_trades_sample() -> None:
    trades = load_trades(sample_path("XRP_ETH-trades"))
    assert len(trades) == 12_477
    assert list(trades.columns) == ["price", "amount", "side"]
    assert trades.index.is_monotonic_increasing and str(trades.index.tz) == "UTC"
    assert set(np.unique(trades["side"])) <= {-1.0, 1.0}
    assert trades.attrs["symbol"] == "XRP/ETH"
    with pytest.raises(DataError, match="trades file: use load_trades"):
        load_ohlcv(sample_path("XRP_ETH-trades"))


SHARED_FILES = [
    (
        "prices/binance_spot_1h/Binance_BTCUSDT_1h_2020-10_2024-12.csv",
        37_090,
        "2020-10-07 18:00",
        "2024-12-31 23:00",
    ),
    ("prices/binance_futures_markprice_1h/BTCUSDT-1h.csv", 35_481, "2019-12-23 11:00", "2024-01-09 19:00"),
    (
        "prices/binance_futures_markprice_1h/ETHUSDT-1h_2019-12_2022-12.csv",
        26_509,
        "2019-12-23 11:00",
        "2022-12-31 23:00",
    ),
    ("prices/bitstamp_cdd/Bitstamp_BTCUSD_1h.csv", 37_387, "2018-05-15 06:00", "2022-08-20 00:00"),
    ("prices/bitstamp_cdd/Bitstamp_BTCUSD_d.csv", 2_823, "2014-11-28", "2022-08-20"),
    ("prices/backtesting_py_BTCUSD_monthly.csv", 156, "2012-01-01", "2024-12-01"),
    ("freqtrade-testdata/ETH_BTC-5m.csv", 5_760, "2018-01-10 04:55", "2018-01-30 04:50"),
    ("freqtrade-testdata/UNITTEST_BTC-1m.json", 13_681, "2017-11-04 23:02", "2017-11-14 22:59"),
    ("freqtrade-testdata/UNITTEST_BTC-8m.json.gz", 13_681, "2017-11-04 23:02", "2017-11-14 22:59"),
    ("freqtrade-testdata/futures/XRP_USDT_USDT-8h-mark.csv", 91, "2021-11-18", "2021-12-18"),
    ("freqtrade-testdata/orderflow/candles.json", 10_999, "2023-01-02 16:45", "2023-02-09 21:15"),
]


@pytest.mark.skipif(not SHARED.is_dir(), reason="the team's shared data folder is not here (CI)")
@pytest.mark.parametrize(("rel", "rows", "first", "last"), SHARED_FILES)
def test_shared_files_when_present(rel: str, rows: int, first: str, last: str) -> None:
    df = load_ohlcv(SHARED / rel)
    check_contract(df)
    assert (len(df), df.index[0], df.index[-1]) == (rows, ts(first), ts(last))
    if "bitstamp" in rel:
        assert df.attrs["volume_swapped_rows"] > 1000 and df.attrs["rows_reversed"]
        # base (BTC) volume, never the USD column: hourly < 10k BTC, daily < 200k BTC (2015-01-14 crash: 124k)
        assert df["volume"].max() < (10_000 if "_1h" in rel else 200_000)


# --------------------------------------------------------------------------------------------- variants


@pytest.mark.parametrize("unit", ["s", "ms", "us"])
def test_epoch_units_and_aliases(tmp_path: Path, unit: str) -> None:
    p = write(
        tmp_path, "kraken_ETHEUR_1h.csv", csv_rows(60, header="Time,OPEN,High,low,Close,Vol", epoch_unit=unit)
    )
    df = load_ohlcv(p)
    check_contract(df)
    assert df.index[0] == ts("2024-01-01") and df.index[-1] == ts("2024-01-01") + 59 * H
    assert (df.attrs["symbol"], df.attrs["venue"]) == ("ETH/EUR", "kraken")


def test_headerless_binance_dump_gz_with_microseconds(tmp_path: Path) -> None:
    lines = []
    for i in range(55):
        t_us = (1_735_689_600_000 + i * 60_000) * 1000  # Binance's 2025+ dumps use µs
        lines.append(f"{t_us},1.0,2.0,0.5,1.5,3.0,{t_us + 59_999_999},4.5,7,1.0,1.5,0")
    p = tmp_path / "BTCUSDT-1m-2025-01-01.csv.gz"
    with gzip.open(p, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    df = load_ohlcv(p)
    assert (
        len(df) == 55 and df.index[0] == ts("2025-01-01") and df.attrs["timeframe"] == pd.Timedelta(minutes=1)
    )
    assert df.attrs["symbol"] == "BTC/USDT"


def test_newest_first_text_dates_reversed(tmp_path: Path) -> None:
    body = csv_rows(60, header="date,open,high,low,close,volume").splitlines()
    p = write(tmp_path, "x.csv", "\n".join([body[0], *reversed(body[1:])]) + "\n")
    df = load_ohlcv(p)
    assert df.attrs["rows_reversed"] and df.index.is_monotonic_increasing and df["open"].iloc[0] == 100.0


def test_json_records(tmp_path: Path) -> None:
    rows = [
        {"Timestamp": 1_700_000_000 + 300 * i, "Open": 1, "High": 2, "Low": 0.5, "Close": 1.5, "Volume": i}
        for i in range(50)
    ]
    p = write(tmp_path, "records.json", json.dumps(rows))
    df = load_ohlcv(p)
    assert len(df) == 50 and df.attrs["timeframe"] == pd.Timedelta(minutes=5)


# --------------------------------------------------------------------------------------------- bad input


def test_missing_columns_lists_found(tmp_path: Path) -> None:
    p = write(tmp_path, "a.csv", "time,open,high,price,volume\n1,2,3,4,5\n")
    with pytest.raises(
        DataError,
        match=r"a\.csv: missing column\(s\) low, close; found columns: "
        r"\['time', 'open', 'high', 'price', 'volume'\]",
    ):
        load_ohlcv(p)
    p = write(tmp_path, "b.csv", "foo,open,high,low,close\n1,2,3,1,2\n")
    with pytest.raises(DataError, match=r"missing column\(s\) timestamp"):
        load_ohlcv(p)


def test_shuffled_rows_name_first_offender(tmp_path: Path) -> None:
    lines = csv_rows(60).splitlines()
    lines[10], lines[11] = lines[11], lines[10]  # data rows 10 and 11 swapped
    p = write(tmp_path, "shuffled.csv", "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"shuffled\.csv: timestamps not sorted: row 11 \(line 12\)"):
        load_ohlcv(p)


def test_duplicate_timestamp_named(tmp_path: Path) -> None:
    lines = csv_rows(60).splitlines()
    lines.insert(21, lines[20])
    p = write(tmp_path, "dup.csv", "\n".join(lines) + "\n")
    with pytest.raises(
        DataError, match=r"dup\.csv: duplicate timestamp 2024-01-01 19:00:00\+00:00 .*row 20.*row 21"
    ):
        load_ohlcv(p)
    # also in a newest-first file (reversal first, then the duplicate is reported)
    body = lines[1:]
    p = write(tmp_path, "dup_rev.csv", "\n".join([lines[0], *reversed(body)]) + "\n")
    with pytest.raises(DataError, match="duplicate timestamp 2024-01-01 19:00:00"):
        load_ohlcv(p)


def test_nan_names_column_and_count(tmp_path: Path) -> None:
    lines = csv_rows(60).splitlines()
    for k in (5, 9, 30):
        f = lines[k].split(",")
        f[4] = "" if k != 30 else "n/a"
        lines[k] = ",".join(f)
    p = write(tmp_path, "nan.csv", "\n".join(lines) + "\n")
    with pytest.raises(
        DataError,
        match=r"nan\.csv: column 'close' has 3 NaN, empty or non-numeric value\(s\), "
        r"first at row 5 \(line 6\)",
    ):
        load_ohlcv(p)


def test_too_few_rows(tmp_path: Path) -> None:
    p = write(tmp_path, "short.csv", csv_rows(10))
    with pytest.raises(DataError, match=r"short\.csv: too few rows: 10 < min_rows=50"):
        load_ohlcv(p)
    assert len(load_ohlcv(p, min_rows=10)) == 10


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f.__setitem__(1, "0"), r"non-positive open price in 1 row\(s\), first 0.0 at row 7"),
        (lambda f: f.__setitem__(3, "-5"), "non-positive low price"),
        (lambda f: (f.__setitem__(2, "90"), f.__setitem__(3, "95")), r"inconsistent OHLC .*first at row 7"),
        (lambda f: f.__setitem__(5, "-1"), "negative volume"),
        (lambda f: f.__setitem__(0, "not a time"), "unparseable timestamp"),
    ],
)
def test_bad_values(tmp_path: Path, mutate: object, message: str) -> None:
    lines = csv_rows(60).splitlines()
    fields = lines[7].split(",")
    mutate(fields)  # type: ignore[operator]
    lines[7] = ",".join(fields)
    p = write(tmp_path, "bad.csv", "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=message):
        load_ohlcv(p)


def test_unknown_format_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown format"):
        load_ohlcv(write(tmp_path, "x.xlsx", "whatever"))
    with pytest.raises(DataError, match="file not found"):
        load_ohlcv(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="unknown format"):
        load_ohlcv(write(tmp_path, "trades.csv", "1672531436,90.54,1.1\n1672531471,90.45,1.0\n"))


# --------------------------------------------------------------------------------------------- gaps


def gappy() -> pd.DataFrame:
    df = load_ohlcv(sample_path("Binance_BTCUSDT_1h")).iloc[:200]
    drop = [
        df.index[50],
        df.index[51],
        df.index[120],
        *df.index[150:160],
    ]  # gaps of 2 and 10 bars (+ any real ones)
    out = df.drop(index=drop)
    out.attrs = dict(df.attrs)
    return out


def test_find_gaps() -> None:
    df = gappy()
    full = load_ohlcv(sample_path("Binance_BTCUSDT_1h")).iloc[:200]
    gaps = find_gaps(df)
    real = find_gaps(full)
    ours = [g for g in gaps if g not in real]
    i = full.index
    assert ours == [Gap(i[50], i[51], 2), Gap(i[120], i[120], 1), Gap(i[150], i[159], 10)]


def test_fill_gaps_short_only_and_causal() -> None:
    df = gappy()
    filled = fill_gaps(df, max_bars=3)
    check_contract(filled)
    long_gaps = [g for g in find_gaps(df) if g.missing > 3]
    assert filled.attrs["unfilled_gaps"] == long_gaps and any(g.missing == 10 for g in long_gaps)
    assert all(g.missing > 3 for g in find_gaps(filled))
    t = df.index[49] + H  # first bar of the 2-bar gap
    prev_close = df.loc[df.index[49], "close"]
    assert filled.loc[t, ["open", "high", "low", "close"]].tolist() == [prev_close] * 4
    assert filled.loc[t, "volume"] == 0.0 and filled.loc[t + H, "close"] == prev_close
    assert filled.attrs["filled_bars"] == sum(g.missing for g in find_gaps(df) if g.missing <= 3)
    # causal: filling a prefix gives the same rows as filling everything and cutting
    for k in (48, 52, 60, 125, len(df)):
        prefix = df.iloc[:k].copy()
        prefix.attrs = dict(df.attrs)
        part = fill_gaps(prefix, max_bars=3)
        pd.testing.assert_frame_equal(part, filled.loc[: df.index[k - 1]], check_freq=False)


def test_split_at_gaps() -> None:
    df = gappy()
    pieces = split_at_gaps(df, min_missing=5)
    assert sum(len(p) for p in pieces) == len(df)
    assert all(not [g for g in find_gaps(p) if g.missing >= 5] for p in pieces)
    assert len(pieces) == 1 + len([g for g in find_gaps(df) if g.missing >= 5])


# --------------------------------------------------------------------------------------------- align, resample


def test_align_inner_and_outer_report() -> None:
    btc = load_ohlcv(sample_path("Binance_BTCUSDT_1h")).loc["2021-01-01":"2021-01-10"]
    eth = load_ohlcv(sample_path("BinanceUSDM_ETHUSDT")).loc["2021-01-03":"2021-01-12"]
    eth = eth.drop(index=eth.index[5])
    out = align({"BTC/USDT": btc, "ETH/USDT": eth}, how="inner")
    assert out["BTC/USDT"].index.equals(out["ETH/USDT"].index)
    n = len(out["BTC/USDT"])
    assert n == 8 * 24 - 1
    assert out["BTC/USDT"].attrs["align"] == {"how": "inner", "rows": n, "dropped": len(btc) - n, "filled": 0}
    assert out["ETH/USDT"].attrs["align"]["dropped"] == len(eth) - n
    assert out["ETH/USDT"].attrs["symbol"] == "ETH/USDT"

    outer = align({"BTC/USDT": btc, "ETH/USDT": eth}, how="outer")
    e = outer["ETH/USDT"]
    check_contract(e)
    assert e.index[0] == ts("2021-01-03") and e.index[-1] == ts("2021-01-12 23:00")
    assert e.attrs["align"]["filled"] == 1
    missing = eth.index[4] + H
    assert e.loc[missing, "close"] == eth.loc[eth.index[4], "close"] and e.loc[missing, "volume"] == 0
    assert outer["BTC/USDT"].attrs["align"]["filled"] == 48  # BTC ends on the 10th, filled flat (causal)

    with pytest.raises(DataError, match="different timeframes"):
        align({"a": btc, "b": resample(btc, "4h")})


def test_resample_matches_manual_and_is_causal() -> None:
    df = load_ohlcv(sample_path("Binance_BTCUSDT_1h")).loc["2021-03-01 02:00":"2021-03-03 01:00"]
    r = resample(df, "4h")
    check_contract(r)
    assert r.attrs["timeframe"] == pd.Timedelta(hours=4)
    # the partial buckets at both ends (02:00-04:00 on the 1st, 00:00-01:00 on the 3rd) are dropped
    assert r.index[0] == ts("2021-03-01 04:00") and r.index[-1] == ts("2021-03-02 20:00")
    chunk = df.loc["2021-03-01 08:00":"2021-03-01 11:00"]
    row = r.loc[ts("2021-03-01 08:00")]
    assert row["open"] == chunk["open"].iloc[0] and row["close"] == chunk["close"].iloc[-1]
    assert row["high"] == chunk["high"].max() and row["low"] == chunk["low"].min()
    assert row["volume"] == pytest.approx(chunk["volume"].sum())
    # causal: a bucket only depends on bars inside it
    cut = resample(df.loc[:"2021-03-02 11:00"], "4h")
    pd.testing.assert_frame_equal(cut, r.loc[: cut.index[-1]], check_freq=False)
    kept = resample(df, "4h", drop_partial=False)
    assert kept.index[0] == ts("2021-03-01 00:00") and kept.index[-1] == ts("2021-03-03 00:00")
    with pytest.raises(DataError, match="multiple"):
        resample(df, "90min")
    daily = resample(load_ohlcv(sample_path("Binance_BTCUSDT_1h")), "1d")
    assert daily.index[0] == ts("2020-10-08") and daily.index[-1] == ts("2024-12-31")


def test_parse_timeframe() -> None:
    assert parse_timeframe("1m") == pd.Timedelta(minutes=1)
    assert parse_timeframe("15min") == pd.Timedelta(minutes=15)
    assert parse_timeframe("4h") == pd.Timedelta(hours=4)
    assert parse_timeframe("1w") == pd.Timedelta(days=7)
    with pytest.raises(ValueError, match="unknown timeframe"):
        parse_timeframe("1M")
