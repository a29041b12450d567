"""PNG + HTML evaluation report: equity curves (model vs baselines), reliability diagram, the metrics tables, the
cost assumptions, the verdict and the warnings. Written with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd

from ml.registry import dump_json

__all__ = ["write_report"]


def _fmt(x: Any, spec: str = ".4f") -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return "–" if not math.isfinite(x) else format(x, spec)
    if isinstance(x, list):
        return ", ".join(_fmt(v, spec) for v in x)
    return html.escape(str(x))


def _table(rows: list[Mapping[str, Any]], columns: list[str], title: str) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<h2>{html.escape(title)}</h2><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _equity_png(equity: pd.DataFrame, path: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(10, 5), dpi=100)
    try:
        for col in equity.columns:
            baseline = col in ("buy_and_hold", "momentum") or str(col).startswith("coin_flip")
            style = {"linewidth": 1.0, "linestyle": "--"} if baseline else {"linewidth": 1.6}
            ax.plot(equity.index, equity[col].to_numpy(), label=str(col), **style)
        ax.axhline(1.0, color="grey", linewidth=0.6)
        ax.set_title(title)
        ax.set_ylabel("equity (after costs)")
        ax.legend(loc="best", fontsize=8)
        fig.autofmt_xdate()
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)


def _calibration_png(calibration: Mapping[str, list[Mapping[str, Any]]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 5.5), dpi=100)
    try:
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
        for kind, bins in calibration.items():
            if bins:
                ax.plot(
                    [b["mean_p"] for b in bins], [b["frac_up"] for b in bins], marker="o", label=str(kind)
                )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("predicted P(up)")
        ax.set_ylabel("observed frequency of up")
        ax.set_title("Reliability diagram")
        ax.legend(loc="best", fontsize=8)
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)


_CSS = """body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;font-size:13px}th{background:#f3f3f3}
.warn{color:#a00}.verdict li{margin:.2em 0}img{max-width:100%;border:1px solid #ddd}"""


def write_report(result: Mapping[str, Any], series: Mapping[str, Any], out_dir: Path) -> dict[str, str]:
    """Write ``equity.png``, ``calibration.png``, ``report.html`` and ``evaluation.json`` into ``out_dir``;
    returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    eq_path, cal_path = out_dir / "equity.png", out_dir / "calibration.png"
    html_path, json_path = out_dir / "report.html", out_dir / "evaluation.json"
    title = f"{result.get('data', {}).get('symbol', '')} — model {result.get('model_version', '')}"
    _equity_png(series["equity"], eq_path, f"Equity after costs: {title}")
    _calibration_png(series["calibration"], cal_path)
    paths = {"html": str(html_path), "png": [str(eq_path), str(cal_path)], "json": str(json_path)}

    cls_rows = [{"model": k, **v} for k, v in result["classification"].items()]
    strat_rows = [{"strategy": k, **v} for k, v in result["strategies"].items() if "sharpe" in v]
    coin_rows = [{"model": k, **v} for k, v in result["coin_flip"].items()]
    cmp_rows = [dict(c) for c in result["comparisons"]]
    costs = result["costs"]
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>Evaluation {html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Out-of-sample evaluation: {html.escape(title)}</h1>",
        f"<p>Window {html.escape(result['window']['first'])} .. {html.escape(result['window']['last'])} "
        f"({result['window']['bars']} bars); label horizon {result.get('horizon_bars')} bar(s).</p>",
        "<h2>Verdict</h2><ul class='verdict'>"
        + "".join(f"<li>{html.escape(v)}</li>" for v in result["verdict"])
        + "</ul>",
    ]
    if result.get("warnings"):
        parts.append(
            "<h2 class='warn'>Warnings</h2><ul>"
            + "".join(f"<li class='warn'>{html.escape(w)}</li>" for w in result["warnings"])
            + "</ul>"
        )
    parts += [
        "<h2>Cost and execution assumptions</h2><table><tbody>"
        + "".join(
            f"<tr><th>{html.escape(str(k))}</th><td style='text-align:left'>{_fmt(v, 'g')}</td></tr>"
            for k, v in costs.items()
        )
        + "".join(
            f"<tr><th>rule {html.escape(str(k))}</th><td style='text-align:left'>{_fmt(v, 'g')}</td></tr>"
            for k, v in result["rule"].items()
        )
        + "</tbody></table>",
        _table(
            cls_rows,
            ["model", "n", "accuracy", "majority_rate", "accuracy_z_vs_majority", "auc", "auc_ci95", "brier"],
            "Classification (out of sample)",
        ),
        _table(
            strat_rows,
            [
                "strategy",
                "sharpe",
                "sharpe_gross",
                "total_return",
                "max_drawdown",
                "turnover",
                "fees_paid",
                "slippage_paid",
                "exposure",
            ],
            "Trading rule vs baselines (after costs)",
        ),
        _table(
            coin_rows,
            [
                "model",
                "seeds",
                "flip_rate",
                "sharpe_mean",
                "sharpe_std",
                "sharpe_p05",
                "sharpe_p95",
                "share_model_beats",
            ],
            "Coin-flip baseline distribution",
        ),
        _table(
            cmp_rows,
            [
                "model",
                "baseline",
                "sharpe_model",
                "sharpe_baseline",
                "sharpe_diff",
                "ci95_low",
                "ci95_high",
                "p_value",
                "p_holm",
                "beats",
            ],
            "Sharpe difference: block bootstrap + Holm correction",
        ),
        f"<p>{html.escape(result['bootstrap']['method'])}; blocks of {result['bootstrap']['block_bars']} bars "
        f"(one day = {result['bootstrap']['bars_per_day']} bars); {result['bootstrap']['n_boot']} replicates; "
        f"{html.escape(result['bootstrap']['correction'])}; alpha {result['bootstrap']['alpha']}.</p>",
        "<h2>Equity curves</h2><img src='equity.png' alt='equity curves'>",
        "<h2>Calibration</h2><img src='calibration.png' alt='reliability diagram'>",
        "</body></html>",
    ]
    html_path.write_text("\n".join(parts), encoding="utf-8")
    dump_json({**result, "report": paths}, json_path)
    return paths
