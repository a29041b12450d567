"""Sequence nets for next-period direction: a stacked LSTM and a small causal Transformer encoder.

Row t's window is rows `t - seq_len + 1 .. t` of the same array (built lazily with `Tensor.unfold`, a strided
view: no `[n, seq_len, n_features]` copy, only one batch at a time is materialised); the net's output for the
window is the representation of its LAST row, so row t only ever sees rows <= t. The first `seq_len - 1` rows
have no full window: `predict_proba` returns NaN there (the caller prepends context rows).

Training: BCE on the next-period label of the window's last row, Adam, gradient clipping, shuffled windows
(numpy Generator seeded by `config.seed`), early stopping on the X_val loss with `patience` (best weights kept).
No auxiliary return head: the contract's `fit` receives only 0/1 labels.
"""

from __future__ import annotations

import contextlib
import io
import math
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ml.models.base import (
    DirectionModel,
    LSTMConfig,
    NetConfig,
    TransformerConfig,
    check_val,
    check_X,
    check_y,
    child_path,
)

WEIGHTS_FILE = "weights.pt"


@contextlib.contextmanager
def torch_context(threads: int, deterministic: bool | None = None, seed: int | None = None) -> Iterator[None]:
    """Thread count, deterministic algorithms (None: leave as is) and optionally a private, seeded global RNG.

    Everything is restored on exit; settings are only touched when they differ (toggling the deterministic flag
    costs ~1 ms, which would dominate a single-row prediction)."""
    prev_threads = torch.get_num_threads()
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    if threads != prev_threads:
        torch.set_num_threads(threads)
    change_det = deterministic is not None and deterministic != prev_det
    if change_det:
        torch.use_deterministic_algorithms(bool(deterministic))
    try:
        if seed is None:
            yield
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                yield
    finally:
        if threads != prev_threads:
            torch.set_num_threads(prev_threads)
        if change_det:
            torch.use_deterministic_algorithms(prev_det, warn_only=prev_warn)


class _LSTMNet(nn.Module):
    def __init__(self, n_features: int, cfg: LSTMConfig) -> None:
        super().__init__()
        self.lstm = nn.LSTM(
            n_features,
            cfg.hidden,
            num_layers=cfg.num_layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
        )
        self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(cfg.hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B, L, F] -> logits [B]
        out, _ = self.lstm(x)
        return self.head(out[:, -1]).squeeze(-1)


def sinusoidal_encoding(length: int, d_model: int) -> torch.Tensor:
    pos = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    pe = torch.zeros(length, d_model)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div[: d_model // 2])
    return pe


class _TransformerNet(nn.Module):
    def __init__(self, n_features: int, cfg: TransformerConfig) -> None:
        super().__init__()
        self.causal = cfg.causal_mask
        self.proj = nn.Linear(n_features, cfg.d_model)
        self.register_buffer("pe", sinusoidal_encoding(cfg.seq_len, cfg.d_model), persistent=False)
        self.register_buffer(
            "mask", nn.Transformer.generate_square_subsequent_mask(cfg.seq_len), persistent=False
        )
        layer = nn.TransformerEncoderLayer(
            cfg.d_model,
            cfg.n_heads,
            dim_feedforward=cfg.ff_dim,
            dropout=cfg.dropout,
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B, L, F] -> logits [B]
        length = x.shape[1]
        h = self.proj(x) + self.pe[:length]
        if self.causal:
            h = self.encoder(h, mask=self.mask[:length, :length], is_causal=True)
        else:
            h = self.encoder(h)
        return self.head(self.norm(h[:, -1])).squeeze(-1)


def _windows(X: torch.Tensor, seq_len: int) -> torch.Tensor:
    """[n, F] -> strided view [n - seq_len + 1, F, seq_len] (window i ends at row i + seq_len - 1)."""
    return X.unfold(0, seq_len, 1)


class _SequenceModel(DirectionModel):
    config: NetConfig

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.net: nn.Module | None = None

    @property
    def seq_len(self) -> int:
        return self.config.seq_len

    def _build(self, n_features: int) -> nn.Module:
        raise NotImplementedError

    @property
    def _device(self) -> torch.device:
        return torch.device(self.config.device)

    # -- training --------------------------------------------------------------------------------------------
    def _batch(self, wins: torch.Tensor, idx: np.ndarray) -> torch.Tensor:
        sel = torch.from_numpy(idx)
        return wins[sel].transpose(1, 2).contiguous().to(self._device)

    def _eval_loss(self, net: nn.Module, wins: torch.Tensor, targets: torch.Tensor) -> float:
        net.eval()
        total, count = 0.0, 0
        bs = self.config.predict_batch_size
        with torch.inference_mode():
            for start in range(0, wins.shape[0], bs):
                idx = np.arange(start, min(start + bs, wins.shape[0]))
                logits = net(self._batch(wins, idx))
                loss = nn.functional.binary_cross_entropy_with_logits(
                    logits, targets[start : start + len(idx)].to(self._device), reduction="sum"
                )
                total += float(loss)
                count += len(idx)
        return total / max(count, 1)

    def fit(self, X: Any, y: Any, *, X_val: Any = None, y_val: Any = None) -> dict[str, Any]:
        cfg = self.config
        L = cfg.seq_len
        x = check_X(X)
        yy = check_y(y, x.shape[0])
        n_features = x.shape[1]
        if x.shape[0] < L:
            raise ValueError(f"need at least seq_len={L} rows to fit, got {x.shape[0]}")
        xv, yv = check_val(X_val, y_val, n_features)
        xt = torch.from_numpy(x)
        wins = _windows(xt, L)
        targets = torch.from_numpy(yy[L - 1 :])
        val: tuple[torch.Tensor, torch.Tensor] | None = None
        if xv is not None and yv is not None:
            ctx = x[-(L - 1) :] if (cfg.val_context and L > 1) else x[:0]
            xv_full = np.concatenate([ctx, xv]) if len(ctx) else xv
            if xv_full.shape[0] >= L:
                skip = L - 1 - len(ctx)  # val rows without a full window
                val = (
                    _windows(torch.from_numpy(np.ascontiguousarray(xv_full)), L),
                    torch.from_numpy(np.ascontiguousarray(yv[skip:])),
                )
        rng = np.random.default_rng(cfg.seed)
        log: dict[str, Any] = {
            "epochs": 0,
            "best_epoch": None,
            "best_iteration": None,
            "train_loss": [],
            "val_loss": [],
            "epoch_seconds": [],
            "n_windows": int(wins.shape[0]),
        }
        with torch_context(cfg.threads, cfg.deterministic, cfg.seed):
            net = self._build(n_features).to(self._device)
            opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
            best_loss, best_state, bad, stop = math.inf, None, 0, False
            for epoch in range(cfg.max_epochs):
                t0 = time.perf_counter()
                net.train()
                order = rng.permutation(wins.shape[0])
                total, count = 0.0, 0
                for start in range(0, len(order), cfg.batch_size):
                    idx = order[start : start + cfg.batch_size]
                    xb = self._batch(wins, idx)
                    yb = targets[torch.from_numpy(idx)].to(self._device)
                    opt.zero_grad(set_to_none=True)
                    loss = nn.functional.binary_cross_entropy_with_logits(net(xb), yb)
                    loss.backward()
                    if cfg.grad_clip > 0:
                        nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
                    opt.step()
                    total += float(loss.detach()) * len(idx)
                    count += len(idx)
                log["train_loss"].append(total / count)
                log["epochs"] = epoch + 1
                if val is not None:
                    vloss = self._eval_loss(net, *val)
                    log["val_loss"].append(vloss)
                    if vloss < best_loss - 1e-7:
                        best_loss, bad = vloss, 0
                        best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                        log["best_epoch"] = epoch + 1
                    else:
                        bad += 1
                        stop = bad >= cfg.patience
                log["epoch_seconds"].append(time.perf_counter() - t0)
                if stop:
                    log["stopped_early"] = True
                    break
            if best_state is not None:
                net.load_state_dict(best_state)
            else:
                log["best_epoch"] = log["epochs"]
        log["best_iteration"] = log["best_epoch"]
        net.eval()
        self.net = net
        self.n_features = n_features
        return log

    # -- inference -------------------------------------------------------------------------------------------
    def predict_proba(self, X: Any) -> np.ndarray:
        n_features = self._require_fitted()
        assert self.net is not None
        cfg = self.config
        L = cfg.seq_len
        x = check_X(X, n_features=n_features)
        out = np.full(x.shape[0], np.nan, dtype=np.float64)
        if x.shape[0] < L:
            return out
        wins = _windows(torch.from_numpy(x), L)
        bs = cfg.predict_batch_size
        self.net.eval()
        with torch_context(cfg.threads), torch.inference_mode():  # CPU inference kernels are deterministic
            for start in range(0, wins.shape[0], bs):
                stop = min(start + bs, wins.shape[0])
                xb = wins[start:stop].transpose(1, 2).contiguous().to(self._device)
                probs = torch.sigmoid(self.net(xb).double())
                out[L - 1 + start : L - 1 + stop] = probs.cpu().numpy()
        return out

    # -- persistence -----------------------------------------------------------------------------------------
    def _save_state(self, directory: Path) -> dict[str, Any]:
        assert self.net is not None
        buf = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in self.net.state_dict().items()}, buf)
        (directory / WEIGHTS_FILE).write_bytes(buf.getvalue())
        return {"weights": WEIGHTS_FILE}

    def _load_state(self, directory: Path, state: Mapping[str, Any]) -> None:
        assert self.n_features is not None
        path = child_path(directory, state.get("weights", WEIGHTS_FILE), what="state.weights")
        # weights_only: tensors and plain containers only, never arbitrary pickled objects
        weights = torch.load(path, map_location=self._device, weights_only=True)
        with torch_context(self.config.threads, None, self.config.seed):
            net = self._build(self.n_features).to(self._device)
        net.load_state_dict(weights)
        net.eval()
        self.net = net


class LSTMModel(_SequenceModel):
    """Stacked LSTM (default 2 layers, hidden 64) over a `seq_len` window; last hidden state -> logit."""

    name: ClassVar[str] = "lstm"
    config_cls: ClassVar[type[Any]] = LSTMConfig
    config: LSTMConfig

    def _build(self, n_features: int) -> nn.Module:
        return _LSTMNet(n_features, self.config)


class TransformerModel(_SequenceModel):
    """Small pre-LN Transformer encoder (d_model 32, 2 layers, 4 heads, sinusoidal positions, causal mask);
    the last token's representation -> logit."""

    name: ClassVar[str] = "transformer"
    config_cls: ClassVar[type[Any]] = TransformerConfig
    config: TransformerConfig

    def _build(self, n_features: int) -> nn.Module:
        return _TransformerNet(n_features, self.config)
