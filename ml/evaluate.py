"""Out-of-sample evaluation of a registered model on an OHLCV file the model never saw.

What it does (every number is after costs unless it says "gross"):
1. refuses a file whose time range overlaps the model's training range on ANY venue+symbol (:class:`OverlapError`);
2. predicts P(up) per model kind; rows inside the feature warm-up / sequence window are skipped;
3. classification: accuracy vs the majority-class rate, ROC AUC (Hanley-McNeil 95% CI), Brier, reliability bins;
4. trading rule per model: long if ``p > 0.5 + band``, short if ``p < 0.5 - band`` (or flat when ``short=False``),
   traded by :mod:`ml.backtest` — the signal at the close of bar t is executed at the close of bar t+1 and held over
   t+1 -> t+2 (no same-bar execution), fees ``fee_bps`` per side + slippage (fixed bps + k x bar range);
5. baselines with the same timing and costs: buy-and-hold, momentum (sign of the trailing ``lookback``-bar
   return) and a coin flip over ``seeds`` seeds that re-draws its position as often as the model changes its own;
6. a paired circular block bootstrap (blocks of at least one day of bars) of the Sharpe difference model −
   baseline with one-sided p-values (H0: the model does not beat it), Holm-corrected across every comparison;
7. a plain-language verdict per comparison, warnings (e.g. an accuracy the backtest does not realise), and
   optionally a PNG + HTML report (:mod:`ml.report`).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.backtest import (
    CostModel,
    backtest_signal,
    coin_flip_returns,
    momentum_signal,
    positions_from_proba,
)
from ml.registry import LoadedModel, RegistryError, dump_json, file_sha256, resolve_model_dir
from ml.stats import (
    bars_per_day,
    bootstrap_sharpe_diff,
    classification_metrics,
    holm,
    sharpe_matrix,
)

__all__ = [
    "OverlapError",
    "calibration_bins",
    "check_no_overlap",
    "evaluate",
    "evaluate_main",
    "evaluate_signals",
]

BASELINES = ("buy_and_hold", "momentum", "coin_flip")
COIN_BOOT_ROWS = 200  # coin-flip seeds paired with bootstrap replicates (memory bound)


class OverlapError(ValueError):
    """The evaluation data overlaps the model's training time range."""


# -- overlap -----------------------------------------------------------------------------------------------------


def check_no_overlap(df: pd.DataFrame, meta: Mapping[str, Any], *, path: str | Path = "") -> None:
    """Raise :class:`OverlapError` if ``df``'s bars overlap the training range of ANY venue+symbol in ``meta``.

    A bar covers ``[open, open + timeframe)``; two ranges overlap when they share any instant."""
    if len(df) == 0:
        raise ValueError(f"{path}: no bars")
    tf = pd.Timedelta(df.attrs["timeframe"]) if df.attrs.get("timeframe") is not None else pd.Timedelta(0)
    first, last = df.index[0], df.index[-1]
    end = last + tf
    clashes = []
    for r in meta.get("training_ranges", []):
        t0, t1 = pd.Timestamp(r["first"]), pd.Timestamp(r["last"])
        t_tf = pd.Timedelta(seconds=float(r.get("timeframe_seconds") or 0.0))
        if first < t1 + t_tf and t0 < end:
            clashes.append(
                f"{r.get('venue') or '?'} {r.get('symbol') or '?'} [{t0.isoformat()} .. {t1.isoformat()}]"
            )
    if clashes:
        raise OverlapError(
            f"{path or 'evaluation data'} ({df.attrs.get('venue', '?')} {df.attrs.get('symbol', '?')}) covers "
            f"[{first.isoformat()} .. {last.isoformat()}], which overlaps the model's training range: "
            + "; ".join(clashes)
            + ". Evaluate on data outside the training range (e.g. train with --until)."
        )


# -- calibration -------------------------------------------------------------------------------------------------


def calibration_bins(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, float | int]]:
    """Reliability diagram data: equal-width probability bins with the mean prediction and observed frequency."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    keep = np.isfinite(y) & np.isfinite(p)
    y, p = y[keep], p[keep]
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        m = which == b
        if m.any():
            out.append(
                {
                    "lo": float(edges[b]),
                    "hi": float(edges[b + 1]),
                    "n": int(m.sum()),
                    "mean_p": float(p[m].mean()),
                    "frac_up": float(y[m].mean()),
                }
            )
    return out


# -- the core ----------------------------------------------------------------------------------------------------


def _timeframe(df: pd.DataFrame) -> pd.Timedelta:
    tf = df.attrs.get("timeframe")
    if tf is not None:
        return pd.Timedelta(tf)
    return pd.Timedelta(np.median(np.diff(df.index.asi8)), unit="ns")


def evaluate_signals(
    bars: pd.DataFrame,
    probs: Mapping[str, pd.Series | np.ndarray],
    labels: pd.Series | np.ndarray,
    *,
    costs: CostModel | None = None,
    band: float = 0.0,
    short: bool = True,
    seeds: int = 1000,
    block_bars: int | None = None,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
    momentum_lookback: int | None = None,
    history: pd.DataFrame | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Metrics, baselines, bootstrap + Holm and the verdict for probabilities already aligned with ``bars``.

    ``bars`` are the evaluated bars (the backtest window); ``labels`` the 0/1 direction labels of those rows (NaN
    where unknown); ``history`` (optional) is the full frame ``bars`` was cut from, for the momentum lookback.
    Returns ``(result, series)``: the JSON-able result and the curves the report draws."""
    costs = costs or CostModel()
    if seeds < 1000:
        raise ValueError(f"seeds must be >= 1000 for the coin-flip distribution, got {seeds}")
    tf = _timeframe(bars)
    day = bars_per_day(tf)
    n = len(bars)
    if block_bars is None:
        block_bars = max(day, math.ceil(n ** (1.0 / 3.0)))
    if block_bars < day:
        raise ValueError(
            f"block_bars={block_bars} is shorter than one day of {tf} bars ({day}): blocks must "
            f"span at least a day"
        )
    if n < 2 * block_bars:
        raise ValueError(f"{n} evaluated bars are too few for bootstrap blocks of {block_bars} bars")
    y = np.asarray(labels, dtype=np.float64)
    warnings: list[str] = []
    classification: dict[str, Any] = {}
    calibration: dict[str, Any] = {}
    strategies: dict[str, Any] = {}
    equity: dict[str, pd.Series] = {}
    net: dict[str, np.ndarray] = {}
    coin: dict[str, Any] = {}
    coin_rows: dict[str, np.ndarray] = {}

    # baselines with fixed rules
    bh = backtest_signal(bars, np.ones(n), costs=costs, timeframe=tf)
    lookback = momentum_lookback or max(2, day)
    hist = history if history is not None else bars
    mom_full = momentum_signal(hist["close"], lookback=lookback, short=short)
    mom_sig = pd.Series(mom_full, index=hist.index).reindex(bars.index).fillna(0.0).to_numpy()
    mom = backtest_signal(bars, mom_sig, costs=costs, timeframe=tf)
    for name, res in (("buy_and_hold", bh), ("momentum", mom)):
        strategies[name] = dict(res.metrics)
        equity[name] = res.equity
        net[name] = res.net.to_numpy()
    strategies["momentum"]["lookback_bars"] = lookback
    ppy = bh.periods_per_year

    comparisons: list[dict[str, Any]] = []
    for kind, p_raw in probs.items():
        p = np.asarray(p_raw, dtype=np.float64)
        if p.shape != (n,):
            raise ValueError(f"{kind}: {p.shape[0]} probabilities for {n} bars")
        classification[kind] = classification_metrics(y, p)
        calibration[kind] = calibration_bins(y, p)
        sig = positions_from_proba(p, band=band, short=short)
        res = backtest_signal(bars, sig, costs=costs, timeframe=tf)
        strategies[kind] = dict(res.metrics)
        equity[kind] = res.equity
        net[kind] = res.net.to_numpy()
        # coin flip matched to this model's trading frequency
        flip_rate = float(np.mean(sig[1:] != sig[:-1])) if n > 1 else 1.0
        sharpes, totals, rows = _coin_flips(
            bars, seeds=seeds, flip_rate=flip_rate, short=short, costs=costs, seed=seed, ppy=ppy
        )
        coin_rows[kind] = rows
        s_model = res.metrics["sharpe"]
        coin[kind] = {
            "seeds": seeds,
            "flip_rate": flip_rate,
            "sharpe_mean": float(np.mean(sharpes)),
            "sharpe_std": float(np.std(sharpes, ddof=1)),
            "sharpe_p05": float(np.quantile(sharpes, 0.05)),
            "sharpe_p95": float(np.quantile(sharpes, 0.95)),
            "total_return_mean": float(np.mean(totals)),
            "share_model_beats": float(np.mean(s_model > sharpes)),
        }
        for base in BASELINES:
            other = coin_rows[kind] if base == "coin_flip" else net[base]
            s_base = coin[kind]["sharpe_mean"] if base == "coin_flip" else strategies[base]["sharpe"]
            boot = bootstrap_sharpe_diff(
                net[kind],
                other,
                periods_per_year=ppy,
                block_len=block_bars,
                n_boot=n_boot,
                seed=seed,
                b_sharpe=s_base,
            )
            comparisons.append(
                {
                    "model": kind,
                    "baseline": base,
                    "sharpe_model": s_model,
                    "sharpe_baseline": s_base,
                    **boot.as_dict(),
                }
            )

        # honesty checks: is the directional accuracy realised by the positions actually held?
        r_bar = bars["close"].pct_change().fillna(0.0).to_numpy()
        pos = res.positions.to_numpy()
        held = (pos != 0) & (r_bar != 0)
        hits = float(np.mean(np.sign(pos[held]) == np.sign(r_bar[held]))) if held.any() else float("nan")
        strategies[kind]["realised_hit_rate"] = hits
        cm = classification[kind]
        acc, maj, z = cm["accuracy"], cm["majority_rate"], cm["accuracy_z_vs_majority"]
        if math.isfinite(hits) and math.isfinite(z) and z > 3.0:
            se = math.sqrt(acc * (1 - acc) / max(cm["n"], 1) + hits * (1 - hits) / max(int(held.sum()), 1))
            if se == 0 or (acc - hits) / se > 3.0:
                warnings.append(
                    f"{kind}: directional accuracy {acc:.3f} (majority {maj:.3f}, z={z:.1f}) is NOT realised by the "
                    f"backtest: the positions held are right on only {hits:.3f} of the bars (gross Sharpe "
                    f"{res.metrics['sharpe_gross']:.2f}). The rule trades the signal of bar t over t+1 -> t+2; an "
                    "accuracy that exists only for the t -> t+1 move points to look-ahead in the features/labels "
                    "or to an edge that decays within one bar."
                )
        if math.isfinite(acc) and acc >= 0.6:
            warnings.append(
                f"{kind}: accuracy {acc:.3f} on bar direction is implausibly high — check for leakage."
            )

    # Holm across every model x baseline comparison
    adj = holm([c["p_value"] for c in comparisons]) if comparisons else []
    verdict: list[str] = []
    for c, a in zip(comparisons, adj, strict=True):
        c["p_holm"] = a
        c["beats"] = bool(a <= alpha and c["sharpe_diff"] > 0)
        verdict.append(
            f"{c['model']} {'BEATS' if c['beats'] else 'does NOT beat'} {c['baseline']} after costs "
            f"(Sharpe {c['sharpe_model']:.2f} vs {c['sharpe_baseline']:.2f}, difference {c['sharpe_diff']:+.2f}, "
            f"p={c['p_value']:.4f}, Holm-adjusted p={a:.4f}, alpha={alpha})"
            + (
                f"; it beats {coin[c['model']]['share_model_beats']:.1%} of {coin[c['model']]['seeds']} coin-flip "
                "seeds."
                if c["baseline"] == "coin_flip"
                else "."
            )
        )
    for kind, cm in classification.items():
        z = cm["accuracy_z_vs_majority"]
        better = math.isfinite(z) and z > 1.96
        verdict.append(
            f"{kind}: accuracy {cm['accuracy']:.4f} vs majority-class rate {cm['majority_rate']:.4f} — "
            f"{'above' if better else 'NOT significantly above'} it (z={z:.2f}); AUC {cm['auc']:.4f} "
            f"(95% CI {cm['auc_ci95'][0]:.4f}..{cm['auc_ci95'][1]:.4f}), Brier {cm['brier']:.4f}."
        )
    strategies["coin_flip"] = {
        "note": "per model (turnover-matched), see coin_flip",
        **next(iter(coin.values()), {}),
    }
    result = {
        "horizon_bars": None,
        "timeframe_seconds": tf.total_seconds(),
        "window": {"first": bars.index[0].isoformat(), "last": bars.index[-1].isoformat(), "bars": n},
        "costs": costs.describe(),
        "rule": {
            "long_if": f"p > {0.5 + band:g}",
            "short_if": f"p < {0.5 - band:g}" if short else None,
            "otherwise": "flat",
            "band": band,
            "short": short,
        },
        "classification": classification,
        "calibration": calibration,
        "strategies": strategies,
        "coin_flip": coin,
        "bootstrap": {
            "method": "paired circular moving-block bootstrap of the annualised Sharpe difference; one-sided "
            "p-value of H0 'model Sharpe <= baseline Sharpe' from the re-centred distribution; the "
            f"coin-flip comparison pairs each replicate with one of {COIN_BOOT_ROWS} coin seeds",
            "block_bars": int(block_bars),
            "bars_per_day": day,
            "n_boot": n_boot,
            "seed": seed,
            "alpha": alpha,
            "correction": f"Holm step-down over {len(comparisons)} comparisons",
        },
        "comparisons": comparisons,
        "beats_all_baselines": {k: all(c["beats"] for c in comparisons if c["model"] == k) for k in probs},
        "verdict": verdict,
        "warnings": warnings,
    }
    if coin_rows:
        first = next(iter(coin_rows))
        rows = coin_rows[first]
        equity[f"coin_flip (mean of {len(rows)} seeds, {first} turnover)"] = pd.Series(
            np.cumprod(1.0 + rows, axis=1).mean(axis=0), index=bars.index
        )
    series = {
        "equity": pd.DataFrame(equity),
        "calibration": calibration,
        "coin_sharpes": {k: v for k, v in coin.items()},
    }
    return result, series


def _coin_flips(
    bars: pd.DataFrame,
    *,
    seeds: int,
    flip_rate: float,
    short: bool,
    costs: CostModel,
    seed: int,
    ppy: float,
    chunk: int = 100,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sharpes, totals, keep = [], [], []
    for j, start in enumerate(range(0, seeds, chunk)):
        k = min(chunk, seeds - start)
        r = coin_flip_returns(
            bars, seeds=k, flip_rate=flip_rate, short=short, costs=costs, seed=int(seed) * 1_000_003 + j
        )
        sharpes.append(sharpe_matrix(r, ppy))
        totals.append(np.prod(1.0 + r, axis=1) - 1.0)
        if sum(len(x) for x in keep) < COIN_BOOT_ROWS:
            keep.append(r[: COIN_BOOT_ROWS - sum(len(x) for x in keep)])
    return np.concatenate(sharpes), np.concatenate(totals), np.concatenate(keep)


# -- the full evaluation of a registered model -------------------------------------------------------------------


def _load_others(paths: Sequence[str | Path], loaded: LoadedModel) -> dict[str, pd.DataFrame]:
    from ml.data import load_ohlcv
    from ml.train import asset_key

    wanted = loaded.meta.get("others", {})
    out: dict[str, pd.DataFrame] = {}
    for p in paths:
        df = load_ohlcv(Path(p))
        key = next(
            (
                k
                for k, v in wanted.items()
                if v.get("venue") == df.attrs.get("venue") and v.get("symbol") == df.attrs.get("symbol")
            ),
            None,
        )
        if key is None:
            key = next(
                (k for k, v in wanted.items() if v.get("symbol") == df.attrs.get("symbol")), asset_key(df)
            )
        out[key] = df
    missing = [f"{v.get('venue')} {v.get('symbol')}" for k, v in wanted.items() if k not in out]
    if missing:
        raise ValueError(
            f"the model was trained with cross-asset features of {missing}: pass their OHLCV files "
            "as others (--other CSV)"
        )
    return out


def evaluate(
    path: str | Path,
    model_dir: str | Path,
    *,
    fee_bps: float = 10.0,
    slippage_bps: float = 5.0,
    slippage_range_k: float = 0.0,
    seeds: int = 1000,
    block_bars: int | None = None,
    report_dir: str | Path | None = None,
    others: Sequence[str | Path] = (),
    models: Sequence[str] | None = None,
    band: float | None = None,
    short: bool | None = None,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
    momentum_lookback: int | None = None,
) -> dict[str, Any]:
    """Evaluate the model in ``model_dir`` (a registry root -> its latest version, or a version directory) on the
    OHLCV file ``path`` (see module doc). Raises :class:`OverlapError` when the file overlaps the training range.
    ``band``/``short`` default to what the model was trained with (``TrainConfig``)."""
    from ml.data import load_ohlcv
    from ml.labels import direction_labels
    from ml.train import warmup_rows

    registry, version = resolve_model_dir(model_dir)
    loaded = registry.load(version)
    df = load_ohlcv(Path(path))
    check_no_overlap(df, loaded.meta, path=path)
    defaults = loaded.meta.get("evaluation_defaults", {})
    band = float(defaults.get("band", 0.0)) if band is None else float(band)
    short = bool(defaults.get("short", True)) if short is None else bool(short)
    kinds = list(models) if models else loaded.kinds
    unknown = [k for k in kinds if k not in loaded.models]
    if unknown:
        raise ValueError(f"model kinds {unknown} are not in version {version} (have {loaded.kinds})")
    other_frames = _load_others(others, loaded)

    feats = loaded.features(df, others=other_frames)
    from ml.registry import transform_features

    X = transform_features(loaded.preprocessor, feats)
    probs_full = {k: np.asarray(loaded.models[k].predict_proba(X), dtype=np.float64) for k in kinds}
    start = max(warmup_rows(feats), max(int(getattr(loaded.models[k], "seq_len", 1)) for k in kinds) - 1)
    if len(df) - start < 50:
        raise ValueError(f"{path}: only {len(df) - start} bars remain after the {start}-bar feature warm-up")
    horizon = loaded.horizon
    labels = direction_labels(df, horizon=horizon).to_numpy(dtype=np.float64)
    bars = df.iloc[start:]
    bars.attrs.update(df.attrs)
    probs = {k: v[start:] for k, v in probs_full.items()}
    costs = CostModel(fee_bps=fee_bps, slippage_bps=slippage_bps, slippage_range_k=slippage_range_k)
    result, series = evaluate_signals(
        bars,
        probs,
        labels[start:],
        costs=costs,
        band=band,
        short=short,
        seeds=seeds,
        block_bars=block_bars,
        n_boot=n_boot,
        alpha=alpha,
        seed=seed,
        momentum_lookback=momentum_lookback,
        history=df,
    )
    tf = _timeframe(df)
    head = {
        "model_version": version,
        "model_dir": str(registry.root / version),
        "data": {
            "path": str(Path(path).resolve()),
            "sha256": file_sha256(path),
            "venue": df.attrs.get("venue"),
            "symbol": df.attrs.get("symbol"),
            "first": df.index[0].isoformat(),
            "last": df.index[-1].isoformat(),
            "rows": len(df),
            "timeframe_seconds": tf.total_seconds(),
        },
        "training_ranges": [
            {k: r.get(k) for k in ("venue", "symbol", "first", "last", "role")}
            for r in loaded.meta.get("training_ranges", [])
        ],
        "walk_forward_oof": {k: v.get("oof") for k, v in loaded.meta.get("models", {}).items()},
        "warmup_bars_skipped": int(start),
    }
    result = {**head, **result, "horizon_bars": horizon}
    if horizon > 1:
        result["warnings"].append(
            f"the labels look {horizon} bars ahead while the rule re-decides every bar; the strategy holds "
            "overlapping bets"
        )
    if report_dir is not None:
        from ml.report import write_report

        result["report"] = write_report(result, series, Path(report_dir))
    return result


# -- CLI ---------------------------------------------------------------------------------------------------------


def evaluate_main(
    data: str,
    model: str,
    json_out: str | None = None,
    report_dir: str | None = None,
    *,
    fee_bps: float = 10.0,
    slippage_bps: float = 5.0,
    slippage_range_k: float = 0.0,
    seeds: int = 1000,
    block_bars: int | None = None,
    others: Sequence[str] = (),
    band: float | None = None,
    short: bool | None = None,
    n_boot: int = 2000,
) -> int:
    """``mevsuite ml evaluate --data CSV --model MODEL_DIR [--json OUT] [--report DIR]``: prints the verdict,
    writes the JSON (``-`` for stdout) and the report. Overlapping data and other user errors: one line on stderr,
    exit status 2."""
    from ml.data import DataError

    try:
        result = evaluate(
            data,
            model,
            fee_bps=fee_bps,
            slippage_bps=slippage_bps,
            slippage_range_k=slippage_range_k,
            seeds=seeds,
            block_bars=block_bars,
            report_dir=report_dir,
            others=others,
            band=band,
            short=short,
            n_boot=n_boot,
        )
    except (OverlapError, DataError, RegistryError, ValueError, FileNotFoundError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)  # one line, whatever the message
        return 2
    if json_out == "-":
        print(json.dumps(_jsonable(result), indent=2, sort_keys=True))
    else:
        if json_out:
            dump_json(result, Path(json_out))
        print(summary_text(result))
    return 0


def _jsonable(obj: Any) -> Any:
    from ml.registry import _json_default, _nan_to_none

    return json.loads(json.dumps(_nan_to_none(obj), default=_json_default))


def summary_text(result: Mapping[str, Any]) -> str:
    """A short plain-text summary: costs, metrics per strategy, verdict lines and warnings."""
    lines = [
        f"model {result.get('model_version')} on {result.get('data', {}).get('symbol')} "
        f"{result['window']['first']} .. {result['window']['last']} ({result['window']['bars']} bars)",
        f"costs: {result['costs']['fee_bps_per_side']:g} bps fee + {result['costs']['slippage_model']}; "
        f"{result['costs']['execution']}",
    ]
    for name, m in result["strategies"].items():
        if "sharpe" in m:
            lines.append(
                f"  {name:14s} Sharpe {m['sharpe']:+.2f}  total {m['total_return']:+.2%}  "
                f"maxDD {m['max_drawdown']:.2%}"
            )
    lines += [f"- {v}" for v in result["verdict"]]
    lines += [f"WARNING: {w}" for w in result["warnings"]]
    if "report" in result:
        lines.append(f"report: {result['report']['html']}")
    return "\n".join(lines)
