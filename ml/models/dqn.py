"""Deep Q-learning for multi-asset position sizing: replay buffer, Q-network, Double-DQN agent, trading env.

TradingEnv timing (no look-ahead)
---------------------------------
`prices[t, i]` is asset i's close of bar t. At decision time t the agent observes the features of rows
`t - window + 1 .. t` (causal: default features are log returns up to t over their trailing volatility) and its
current positions. Its action sets TARGET positions that are traded at close t (fees + slippage charged on the
traded notional) and then held over the NEXT bar: the step's portfolio return is
`sum_i w_i * (prices[t+1, i] / prices[t, i] - 1) - costs / equity_t`. A position taken at t earns t -> t+1,
never t-1 -> t. Afterwards the weights drift with the prices (`w_i (1 + r_i) / (1 + R)`); the next trade is
measured from the drifted weights.

Action space (joint, factored by asset)
---------------------------------------
Each asset has `len(levels)` sizing levels (default {-1, -0.5, 0, 0.5, 1}); the Q-network has one output per
JOINT action, `n_levels ** n_assets` outputs (125 for 3 assets), indexed in mixed radix: asset 0 is the most
significant digit (`TradingEnv.decode_action` / `encode_action`, numpy `unravel_index` order). Joint actions keep
exact Double-DQN targets over the whole portfolio; with many assets, use fewer levels (capped at 4096 actions).

Position sizing: target weight_i = level_i * max_position_i * scale_i,t where, with `vol_target` set,
scale_i,t = min(max_vol_scale, vol_target / sigma_i,t) (sigma: trailing `vol_window` std of log returns, <= t).

Costs: fees = fee_bps * 1e-4 * traded notional (per side; traded notional = sum_i |target_i - w_i| * equity);
slippage rate per asset = slippage_bps * 1e-4 + slippage_vol_coef * sigma_i,t + slippage_size_coef * |dw_i|.

Reward (`reward`): "log_return" (log(1 + R)), "mean_variance" (log(1 + R) - risk_lambda * variance of the last
`var_window` portfolio log returns), or "dsr" (Moody & Saffell's differential Sharpe ratio, `dsr_eta`), times
`reward_scale` (default 100 for the return-based rewards, 1 for dsr).

The API is gym-like: `reset() -> obs`, `step(action) -> (obs, reward, done, info)`; `info["truncated"]` is
True when the episode ends because the data (or `episode_len`) ends, `info["terminated"]` when equity <= 0.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from ml.models.base import ModelFileError, check_inside, read_json_object
from ml.models.nets import torch_context

MAX_JOINT_ACTIONS = 4096


# ------------------------------------------------------------------------------------------------ replay buffer
class Batch(NamedTuple):
    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_obs: np.ndarray
    dones: np.ndarray
    indices: np.ndarray


class ReplayBuffer:
    """Ring buffer of transitions on preallocated numpy arrays; uniform sampling, no repeats within a batch."""

    def __init__(self, capacity: int, obs_dim: int, seed: int | None = 0) -> None:
        if capacity < 1 or obs_dim < 1:
            raise ValueError("capacity and obs_dim must be >= 1")
        self.capacity, self.obs_dim = capacity, obs_dim
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.dones = np.zeros(capacity, dtype=np.float32)
        self.ptr = 0  # next slot to write
        self.size = 0
        self.pushed = 0  # total transitions ever pushed
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.size

    def push(self, obs: Any, action: int, reward: float, next_obs: Any, done: bool) -> None:
        i = self.ptr
        self.obs[i] = obs
        self.next_obs[i] = next_obs
        self.actions[i] = action
        self.rewards[i] = reward
        self.dones[i] = float(done)
        self.ptr = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        self.pushed += 1

    def sample(self, batch_size: int) -> Batch:
        if not 1 <= batch_size <= self.size:
            raise ValueError(f"cannot sample {batch_size} distinct transitions from {self.size} stored")
        idx = self.rng.choice(self.size, size=batch_size, replace=False)
        return Batch(
            self.obs[idx], self.actions[idx], self.rewards[idx], self.next_obs[idx], self.dones[idx], idx
        )


# ------------------------------------------------------------------------------------------------ network/agent
class QNetwork(nn.Module):
    """MLP obs -> one Q-value per (joint) action."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: Sequence[int] = (128, 128)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = obs_dim
        for h in hidden:
            layers += [nn.Linear(prev, h), nn.ReLU()]
            prev = h
        layers.append(nn.Linear(prev, n_actions))
        self.body = nn.Sequential(*layers)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.body(obs)


@dataclass(frozen=True)
class DQNConfig:
    total_steps: int = 20_000  # environment steps in train_dqn
    gamma: float = 0.99
    lr: float = 1e-3
    batch_size: int = 64
    buffer_capacity: int = 50_000
    learning_starts: int = 1_000  # env steps before the first update
    train_every: int = 1  # env steps per gradient update
    target_update: int = 500  # hard copy every N updates (when tau is None)
    tau: float | None = None  # soft (Polyak) update target += tau * (online - target) after every update
    eps_start: float = 1.0
    eps_end: float = 0.05
    eps_decay_steps: int = 10_000  # linear decay over this many env steps
    double: bool = True  # Double-DQN targets (online argmax, target evaluation)
    huber_delta: float = 1.0
    grad_clip: float = 10.0  # max global grad norm (0 disables)
    hidden: tuple[int, ...] = (128, 128)
    seed: int = 0
    threads: int = 2
    device: str = "cpu"
    log_every: int = 1_000  # progress callback period (env steps)

    def __post_init__(self) -> None:
        if self.tau is not None and not 0.0 < self.tau <= 1.0:
            raise ValueError("tau must be in (0, 1] (or None for hard updates)")
        if self.target_update < 1 or self.batch_size < 1 or self.train_every < 1:
            raise ValueError("target_update, batch_size and train_every must be >= 1")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError("gamma must be in [0, 1]")
        object.__setattr__(self, "hidden", tuple(self.hidden))


class DQNAgent:
    """Online + target Q-networks, epsilon-greedy acting, Double-DQN Huber updates with gradient clipping."""

    def __init__(self, obs_dim: int, n_actions: int, config: DQNConfig | None = None) -> None:
        self.config = cfg = config or DQNConfig()
        self.obs_dim, self.n_actions = obs_dim, n_actions
        self.device = torch.device(cfg.device)
        with torch_context(cfg.threads, None, cfg.seed):
            self.online = QNetwork(obs_dim, n_actions, cfg.hidden).to(self.device)
        self.target = copy.deepcopy(self.online)
        self.target.requires_grad_(False)
        self.target.eval()
        self.optimizer = torch.optim.Adam(self.online.parameters(), lr=cfg.lr)
        self.rng = np.random.default_rng(cfg.seed + 1)
        self.steps = 0  # act() calls that explore (env steps)
        self.updates = 0
        self.target_syncs = 0

    @property
    def epsilon(self) -> float:
        c = self.config
        frac = min(1.0, self.steps / max(c.eps_decay_steps, 1))
        return c.eps_start + frac * (c.eps_end - c.eps_start)

    def q_values(self, obs: Any) -> np.ndarray:
        with torch.inference_mode():
            t = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.device)
            return self.online(t).cpu().numpy()

    def act(self, obs: Any, greedy: bool = False) -> int:
        if not greedy:
            eps = self.epsilon
            self.steps += 1
            if self.rng.random() < eps:
                return int(self.rng.integers(self.n_actions))
        with torch_context(self.config.threads):
            return int(np.argmax(self.q_values(obs)))

    def learn(self, batch: Batch) -> float:
        """One gradient step on a batch; then the target update (hard every `target_update`, or soft)."""
        c = self.config
        dev = self.device
        obs = torch.as_tensor(batch.obs, device=dev)
        nxt = torch.as_tensor(batch.next_obs, device=dev)
        act = torch.as_tensor(batch.actions, device=dev).long()
        rew = torch.as_tensor(batch.rewards, device=dev).float()
        done = torch.as_tensor(batch.dones, device=dev).float()
        with torch_context(c.threads, True):
            q = self.online(obs).gather(1, act[:, None]).squeeze(1)
            with torch.no_grad():
                if c.double:
                    a_star = self.online(nxt).argmax(dim=1, keepdim=True)
                    q_next = self.target(nxt).gather(1, a_star).squeeze(1)
                else:
                    q_next = self.target(nxt).max(dim=1).values
                y = rew + c.gamma * (1.0 - done) * q_next
            loss = nn.functional.huber_loss(q, y, delta=c.huber_delta)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if c.grad_clip > 0:
                nn.utils.clip_grad_norm_(self.online.parameters(), c.grad_clip)
            self.optimizer.step()
            self.updates += 1
            self._update_target()
        return float(loss.detach())

    def _update_target(self) -> None:
        c = self.config
        with torch.no_grad():
            if c.tau is not None:
                for tp, op in zip(self.target.parameters(), self.online.parameters(), strict=True):
                    tp.add_(c.tau * (op - tp))
                for tb, ob in zip(self.target.buffers(), self.online.buffers(), strict=True):
                    tb.copy_(ob)
                self.target_syncs += 1
            elif self.updates % c.target_update == 0:
                self.target.load_state_dict(self.online.state_dict())
                self.target_syncs += 1

    def save(self, directory: Path | str) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        torch.save(
            {"online": self.online.state_dict(), "target": self.target.state_dict()}, directory / "dqn.pt"
        )
        meta = {
            "obs_dim": self.obs_dim,
            "n_actions": self.n_actions,
            "config": dataclasses.asdict(self.config),
            "steps": self.steps,
            "updates": self.updates,
        }
        (directory / "dqn.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory: Path | str) -> DQNAgent:
        directory = Path(directory)
        path = check_inside(directory, directory / "dqn.json", what="file")
        meta = read_json_object(path)
        cfg = meta.get("config")
        if not isinstance(cfg, dict) or not isinstance(cfg.get("hidden"), list):
            raise ModelFileError(f"{path}: 'config' must be an object with a 'hidden' list")
        for key in ("obs_dim", "n_actions", "steps", "updates"):
            if isinstance(meta.get(key), bool) or not isinstance(meta.get(key), int):
                raise ModelFileError(f"{path}: {key!r} must be an integer, got {meta.get(key)!r}")
        try:
            config = DQNConfig(**{**cfg, "hidden": tuple(cfg["hidden"])})
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"{path}: bad config: {exc}") from exc
        agent = cls(meta["obs_dim"], meta["n_actions"], config)
        weights = check_inside(directory, directory / "dqn.pt", what="file")
        # weights_only: tensors and plain containers only, never arbitrary pickled objects
        state = torch.load(weights, map_location=agent.device, weights_only=True)
        agent.online.load_state_dict(state["online"])
        agent.target.load_state_dict(state["target"])
        agent.steps, agent.updates = meta["steps"], meta["updates"]
        return agent


class RandomPolicy:
    """Uniform random joint actions (a baseline for `evaluate_policy`)."""

    def __init__(self, n_actions: int, seed: int = 0) -> None:
        self.n_actions = n_actions
        self.rng = np.random.default_rng(seed)

    def act(self, obs: Any, greedy: bool = True) -> int:
        return int(self.rng.integers(self.n_actions))


# ------------------------------------------------------------------------------------------------ environment
@dataclass(frozen=True)
class TradingEnvConfig:
    window: int = 16  # feature rows per observation
    levels: tuple[float, ...] = (-1.0, -0.5, 0.0, 0.5, 1.0)
    max_position: float | tuple[float, ...] = 1.0  # per asset, fraction of equity at level 1
    fee_bps: float = 10.0  # per side, on traded notional
    slippage_bps: float = 2.0
    slippage_vol_coef: float = 0.0  # extra slippage rate per unit of the asset's bar volatility
    slippage_size_coef: float = 0.0  # extra slippage rate per unit of |weight traded|
    vol_target: float | None = None  # per-bar volatility target of each position (None: no scaling)
    vol_window: int = 20
    max_vol_scale: float = 3.0
    reward: str = "mean_variance"  # "log_return" | "mean_variance" | "dsr"
    risk_lambda: float = 1.0
    var_window: int = 20
    dsr_eta: float = 0.01
    reward_scale: float | None = None  # None: 100 for return rewards, 1 for dsr
    episode_len: int | None = None  # None: each episode runs over the whole series
    periods_per_year: float = 8760.0  # for the annualised Sharpe in evaluate_policy (hourly bars)
    initial_equity: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.reward not in ("log_return", "mean_variance", "dsr"):
            raise ValueError(f"unknown reward {self.reward!r}")
        if self.window < 1 or self.vol_window < 2 or self.var_window < 2:
            raise ValueError("window >= 1, vol_window >= 2, var_window >= 2")
        if len(self.levels) < 2:
            raise ValueError("need at least two sizing levels")
        object.__setattr__(self, "levels", tuple(float(v) for v in self.levels))
        if isinstance(self.max_position, list | tuple):
            object.__setattr__(self, "max_position", tuple(float(v) for v in self.max_position))


def default_features(prices: np.ndarray, vol_window: int) -> np.ndarray:
    """Per-asset log return over its trailing volatility (rows <= t only), clipped to +-5; 0 where undefined."""
    logret = np.zeros_like(prices)
    logret[1:] = np.log(prices[1:] / prices[:-1])
    vol = trailing_vol(logret, vol_window)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(vol > 0, logret / vol, 0.0)
    return np.clip(np.nan_to_num(z), -5, 5).astype(np.float32)


def trailing_vol(logret: np.ndarray, window: int) -> np.ndarray:
    """std of logret rows (t - window, t] (row 0 excluded: it has no return); NaN for the first rows."""
    out = np.full(logret.shape, np.nan)
    c1 = np.cumsum(np.vstack([np.zeros((1, logret.shape[1])), logret]), axis=0)
    c2 = np.cumsum(np.vstack([np.zeros((1, logret.shape[1])), logret**2]), axis=0)
    for t in range(window, logret.shape[0]):
        s1 = c1[t + 1] - c1[t + 1 - window]
        s2 = c2[t + 1] - c2[t + 1 - window]
        var = np.maximum(s2 / window - (s1 / window) ** 2, 0.0) * window / (window - 1)
        out[t] = np.sqrt(var)
    return out


class TradingEnv:
    """Multi-asset trading environment; see the module docstring for timing, actions, costs and rewards."""

    def __init__(self, prices: Any, features: Any = None, config: TradingEnvConfig | None = None) -> None:
        self.config = cfg = config or TradingEnvConfig()
        p = np.asarray(prices, dtype=np.float64)
        if p.ndim == 1:
            p = p[:, None]
        if p.ndim != 2 or not np.isfinite(p).all() or (p <= 0).any():
            raise ValueError("prices must be a finite, positive [T, n_assets] array")
        self.prices = p
        self.T, self.n_assets = p.shape
        self.asset_returns = np.zeros_like(p)  # asset_returns[t] = p[t+1] / p[t] - 1 (the bar AFTER t)
        self.asset_returns[:-1] = p[1:] / p[:-1] - 1.0
        logret = np.zeros_like(p)
        logret[1:] = np.log(p[1:] / p[:-1])
        self.vol = trailing_vol(logret, cfg.vol_window)
        if features is None:
            feats = default_features(p, cfg.vol_window)
        else:
            feats = np.asarray(features, dtype=np.float32)
            if feats.ndim == 1:
                feats = feats[:, None]
            if feats.shape[0] != self.T or not np.isfinite(feats).all():
                raise ValueError("features must be finite with one row per price row")
        self.features = feats
        self.levels = np.asarray(cfg.levels)
        self.n_levels = len(self.levels)
        self.n_actions = self.n_levels**self.n_assets
        if self.n_actions > MAX_JOINT_ACTIONS:
            raise ValueError(
                f"{self.n_levels}^{self.n_assets} joint actions > {MAX_JOINT_ACTIONS}: use fewer levels"
            )
        mp = cfg.max_position
        self.max_position = np.broadcast_to(np.asarray(mp, dtype=np.float64), (self.n_assets,)).copy()
        self.first_t = max(cfg.window - 1, cfg.vol_window)
        if self.first_t >= self.T - 1:
            raise ValueError(f"need more than {self.first_t + 1} price rows, got {self.T}")
        self.obs_dim = cfg.window * feats.shape[1] + self.n_assets
        self.reward_scale = (
            cfg.reward_scale if cfg.reward_scale is not None else (1.0 if cfg.reward == "dsr" else 100.0)
        )
        self.rng = np.random.default_rng(cfg.seed)
        self.reset()

    # -- actions -------------------------------------------------------------------------------------------------
    def decode_action(self, action: int) -> np.ndarray:
        """Joint action index -> level per asset (asset 0 = most significant mixed-radix digit)."""
        if not 0 <= action < self.n_actions:
            raise ValueError(f"action {action} out of range [0, {self.n_actions})")
        digits = np.unravel_index(int(action), (self.n_levels,) * self.n_assets)
        return self.levels[np.asarray(digits)]

    def encode_action(self, levels: Sequence[float]) -> int:
        idx = [int(np.flatnonzero(np.isclose(self.levels, v))[0]) for v in levels]
        return int(np.ravel_multi_index(idx, (self.n_levels,) * self.n_assets))

    def position_scale(self, t: int) -> np.ndarray:
        cfg = self.config
        if cfg.vol_target is None:
            return np.ones(self.n_assets)
        sig = self.vol[t]
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(np.isfinite(sig) & (sig > 0), cfg.vol_target / sig, cfg.max_vol_scale)
        return np.minimum(scale, cfg.max_vol_scale)

    # -- episode ---------------------------------------------------------------------------------------------------
    def reset(
        self, *, start: int | None = None, length: int | None = None, seed: int | None = None
    ) -> np.ndarray:
        """Start an episode at `start` (default: the first usable row, or a random one with `episode_len`)."""
        cfg = self.config
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        last = self.T - 2  # last decision row (needs the bar after it)
        length = length if length is not None else cfg.episode_len
        if start is None:
            if length is not None and length < last - self.first_t + 1:
                start = int(self.rng.integers(self.first_t, last - length + 2))
            else:
                start = self.first_t
        if not self.first_t <= start <= last:
            raise ValueError(f"start must be in [{self.first_t}, {last}]")
        self.t = start
        self.end = last if length is None else min(last, start + length - 1)
        self.weights = np.zeros(self.n_assets)
        self.equity = float(cfg.initial_equity)
        self._logrets: list[float] = []
        self._dsr_a = 0.0
        self._dsr_b = 0.0
        return self.observation()

    def observation(self) -> np.ndarray:
        w = self.config.window
        feats = self.features[self.t - w + 1 : self.t + 1].reshape(-1)
        pos = self.weights / np.where(self.max_position > 0, self.max_position, 1.0)
        return np.concatenate([feats, pos]).astype(np.float32)

    def _reward(self, log_ret: float) -> float:
        cfg = self.config
        if cfg.reward == "log_return":
            r = log_ret
        elif cfg.reward == "mean_variance":
            recent = self._logrets[-cfg.var_window :]
            var = float(np.var(recent)) if len(recent) >= 2 else 0.0
            r = log_ret - cfg.risk_lambda * var
        else:  # differential Sharpe ratio
            a, b = self._dsr_a, self._dsr_b
            da, db = log_ret - a, log_ret * log_ret - b
            denom = (b - a * a) ** 1.5
            r = (b * da - 0.5 * a * db) / denom if denom > 1e-12 else 0.0
            self._dsr_a, self._dsr_b = a + cfg.dsr_eta * da, b + cfg.dsr_eta * db
        return r * self.reward_scale

    def step(self, action: int) -> tuple[np.ndarray, float, bool, dict[str, Any]]:
        cfg = self.config
        t = self.t
        if t > self.end:
            raise RuntimeError("episode is over: call reset()")
        levels = self.decode_action(action)
        target = levels * self.max_position * self.position_scale(t)
        delta = np.abs(target - self.weights)
        equity = self.equity
        traded = float(delta.sum() * equity)
        fees = cfg.fee_bps * 1e-4 * traded
        vol = np.nan_to_num(self.vol[t])
        slip_rate = cfg.slippage_bps * 1e-4 + cfg.slippage_vol_coef * vol + cfg.slippage_size_coef * delta
        slippage = float((slip_rate * delta).sum() * equity)
        r = self.asset_returns[t]  # the bar t -> t+1
        port_ret = float(target @ r) - (fees + slippage) / equity
        terminated = port_ret <= -1.0
        port_ret = max(port_ret, -1.0 + 1e-12)
        self.equity = equity * (1.0 + port_ret)
        self.weights = target * (1.0 + r) / (1.0 + port_ret)
        log_ret = math.log1p(port_ret)
        self._logrets.append(log_ret)
        reward = self._reward(log_ret)
        self.t = t + 1
        truncated = self.t > self.end and not terminated
        info = {
            "t": t,
            "equity": self.equity,
            "port_return": port_ret,
            "log_return": log_ret,
            "fees": fees,
            "slippage": slippage,
            "traded_notional": traded,
            "turnover": float(delta.sum()),
            "positions": target,
            "levels": levels,
            "asset_returns": r.copy(),
            "truncated": truncated,
            "terminated": terminated,
        }
        obs = self.observation() if self.t <= self.T - 1 else np.zeros(self.obs_dim, dtype=np.float32)
        return obs, reward, bool(terminated or truncated), info


# ------------------------------------------------------------------------------------------------ train/evaluate
def train_dqn(
    env: TradingEnv,
    config: DQNConfig | None = None,
    progress: Callable[[int, dict[str, Any]], None] | None = None,
) -> tuple[DQNAgent, dict[str, Any]]:
    """Train a Double-DQN agent on `env` for `config.total_steps` env steps. Returns (agent, log)."""
    cfg = config or DQNConfig()
    t0 = time.perf_counter()
    agent = DQNAgent(env.obs_dim, env.n_actions, cfg)
    buffer = ReplayBuffer(cfg.buffer_capacity, env.obs_dim, seed=cfg.seed)
    log: dict[str, Any] = {"losses": [], "episode_returns": [], "episode_rewards": [], "epsilon": []}
    obs = env.reset(seed=cfg.seed)
    ep_reward, ep_logret = 0.0, 0.0
    with torch_context(cfg.threads, True, cfg.seed):
        for step in range(1, cfg.total_steps + 1):
            action = agent.act(obs)
            nxt, reward, done, info = env.step(action)
            buffer.push(obs, action, reward, nxt, info["terminated"])  # truncation is not terminal
            ep_reward += reward
            ep_logret += info["log_return"]
            obs = nxt
            if done:
                log["episode_rewards"].append(ep_reward)
                log["episode_returns"].append(math.expm1(ep_logret))
                log["epsilon"].append(agent.epsilon)
                ep_reward, ep_logret = 0.0, 0.0
                obs = env.reset()
            if step >= cfg.learning_starts and step % cfg.train_every == 0 and len(buffer) >= cfg.batch_size:
                log["losses"].append(agent.learn(buffer.sample(cfg.batch_size)))
            if progress is not None and step % cfg.log_every == 0:
                recent = log["losses"][-cfg.log_every :]
                progress(
                    step,
                    {
                        "epsilon": agent.epsilon,
                        "loss": float(np.mean(recent)) if recent else None,
                        "episodes": len(log["episode_returns"]),
                    },
                )
    log.update(
        steps=cfg.total_steps,
        updates=agent.updates,
        target_syncs=agent.target_syncs,
        seconds=time.perf_counter() - t0,
    )
    return agent, log


def evaluate_policy(
    agent: Any, env: TradingEnv, *, start: int | None = None, length: int | None = None
) -> dict[str, Any]:
    """Run one greedy episode (default: the whole series from `env.first_t`).

    `agent`: anything with `act(obs, greedy=True) -> int` (DQNAgent, RandomPolicy) or a callable
    `(obs, env) -> int`. Returns the equity curve, per-step returns, total return, annualised Sharpe, max
    drawdown, turnover (sum of |weight traded|), traded notional, fees and slippage paid.
    """
    obs = env.reset(
        start=start if start is not None else env.first_t, length=length if length is not None else env.T
    )
    equity = [env.equity]
    rets, actions = [], []
    turnover = fees = slippage = traded = 0.0
    done = False
    while not done:
        action = agent.act(obs, greedy=True) if hasattr(agent, "act") else agent(obs, env)
        obs, _, done, info = env.step(int(action))
        equity.append(info["equity"])
        rets.append(info["port_return"])
        actions.append(int(action))
        turnover += info["turnover"]
        traded += info["traded_notional"]
        fees += info["fees"]
        slippage += info["slippage"]
    eq = np.asarray(equity)
    r = np.asarray(rets)
    sd = float(r.std(ddof=1)) if len(r) > 1 else 0.0
    sharpe = float(r.mean() / sd * math.sqrt(env.config.periods_per_year)) if sd > 0 else 0.0
    peak = np.maximum.accumulate(eq)
    return {
        "equity_curve": eq,
        "returns": r,
        "actions": np.asarray(actions),
        "n_steps": len(r),
        "total_return": float(eq[-1] / eq[0] - 1.0),
        "sharpe": sharpe,
        "max_drawdown": float(((peak - eq) / peak).max()),
        "turnover": turnover,
        "mean_turnover": turnover / max(len(r), 1),
        "traded_notional": traded,
        "fees_paid": fees,
        "slippage_paid": slippage,
    }


__all__ = [
    "Batch",
    "DQNAgent",
    "DQNConfig",
    "QNetwork",
    "RandomPolicy",
    "ReplayBuffer",
    "TradingEnv",
    "TradingEnvConfig",
    "evaluate_policy",
    "train_dqn",
]
