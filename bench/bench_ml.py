"""ML models: training time (per epoch for the nets, per fit for GBDT / stack, per 1,000 env steps for the DQN)
and inference latency p50/p99 for the latest row alone and for a batch of 1,000 rows.

Synthetic data: 3,000 training + 500 early-stopping rows x 16 float32 features with a weak planted signal.
Every model uses its DEFAULT config (nets: seq_len 64, batch 64, 2 threads; GBDT: 400 rounds, early stopping,
n_jobs 2), except that the nets train a single epoch here. "latest row" = `predict_proba` on the last `seq_len`
rows (one output), "1k rows" = 1,000 outputs (plus `seq_len - 1` context rows for the nets). Columns: `per`
(what `train s` measures: one epoch, one fit, 1,000 DQN env steps), `rounds` (epochs / boosting rounds run).
DQN: 3 assets x 5 levels = 125 joint actions; 1-row = a greedy `act`, 1k rows = Q-values of 1,000 observations.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

N_TRAIN, N_VAL, N_FEATURES = 3_000, 500, 16
SINGLE_REPS, BATCH_REPS = 100, 10


def _latency_ms(fn: Callable[[], Any], reps: int) -> tuple[float, float]:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    n = N_TRAIN + N_VAL + 1_100
    X = rng.standard_normal((n, N_FEATURES)).astype(np.float32)
    z = 0.5 * X[:, 0] + 0.3 * np.concatenate([[0.0], X[:-1, 1]]) + rng.standard_normal(n)
    return X, (z > 0).astype(np.int64)


def _model_rows() -> list[dict[str, Any]]:
    from ml.models import make_model

    X, y = _data()
    tr, va = slice(0, N_TRAIN), slice(N_TRAIN, N_TRAIN + N_VAL)
    rows = []
    for kind in ("lstm", "transformer", "xgboost", "lightgbm", "stack"):
        model = make_model(kind, max_epochs=1) if kind in ("lstm", "transformer") else make_model(kind)
        t0 = time.perf_counter()
        log = model.fit(X[tr], y[tr], X_val=X[va], y_val=y[va])
        fit_s = time.perf_counter() - t0
        L = model.seq_len
        latest = X[-L:]
        batch = X[-(1_000 + L - 1) :]
        assert np.isfinite(model.predict_proba(latest)[-1])
        single = _latency_ms(lambda m=model, x=latest: m.predict_proba(x), SINGLE_REPS)
        many = _latency_ms(lambda m=model, x=batch: m.predict_proba(x), BATCH_REPS)
        is_net = kind in ("lstm", "transformer")
        rows.append(
            {
                "model": kind,
                "per": "epoch" if is_net else "fit",
                "train s": log["epoch_seconds"][0] if is_net else fit_s,
                "rounds": log.get("epochs"),
                "1-row p50 ms": single[0],
                "1-row p99 ms": single[1],
                "1k-rows p50 ms": many[0],
                "1k-rows p99 ms": many[1],
            }
        )
    return rows


def _dqn_row() -> dict[str, Any]:
    from ml.models.dqn import DQNConfig, TradingEnv, TradingEnvConfig, train_dqn

    rng = np.random.default_rng(1)
    prices = 100 * np.exp(np.cumsum(0.01 * rng.standard_normal((2_000, 3)), axis=0))
    env = TradingEnv(prices, config=TradingEnvConfig())  # 3 assets x 5 levels = 125 joint actions
    steps = 2_000
    cfg = DQNConfig(total_steps=steps, learning_starts=500, eps_decay_steps=1_500)
    t0 = time.perf_counter()
    agent, _ = train_dqn(env, cfg)
    train_s = (time.perf_counter() - t0) / steps * 1_000
    obs = env.reset()
    obs_batch = np.repeat(obs[None, :], 1_000, axis=0)
    single = _latency_ms(lambda: agent.act(obs, greedy=True), SINGLE_REPS)
    many = _latency_ms(lambda: agent.q_values(obs_batch), BATCH_REPS)
    return {
        "model": f"dqn {env.n_actions}a",
        "per": "1k steps",
        "train s": train_s,
        "rounds": steps,
        "1-row p50 ms": single[0],
        "1-row p99 ms": single[1],
        "1k-rows p50 ms": many[0],
        "1k-rows p99 ms": many[1],
    }


def run() -> list[dict[str, Any]]:
    try:
        import lightgbm  # noqa: F401
        import sklearn  # noqa: F401
        import torch  # noqa: F401
        import xgboost  # noqa: F401
    except ImportError as exc:
        return [{"model": "skipped", "per": f"{exc.name} not installed (pip install -e '.[ml]')"}]
    return [*_model_rows(), _dqn_row()]
