"""ml/models/dqn: replay buffer, target-network updates, Double-DQN loss, trading env timing/costs, training."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ml.models.dqn import (  # noqa: E402
    Batch,
    DQNAgent,
    DQNConfig,
    RandomPolicy,
    ReplayBuffer,
    TradingEnv,
    TradingEnvConfig,
    evaluate_policy,
    train_dqn,
)
from ml.models.nets import torch_context  # noqa: E402

# threads=1: tiny MLPs gain nothing from a second thread, and OpenMP barriers crawl on a busy machine
SMALL = {"hidden": (16, 16), "threads": 1}


# ------------------------------------------------------------------------------------------------ replay buffer
def _push(buf: ReplayBuffer, i: int) -> None:
    buf.push(
        np.full(buf.obs_dim, i, dtype=np.float32), i % 3, float(i), np.full(buf.obs_dim, i + 0.5), i % 4 == 0
    )


def test_replay_buffer_wraps_and_keeps_newest() -> None:
    buf = ReplayBuffer(capacity=5, obs_dim=3, seed=0)
    for i in range(12):
        _push(buf, i)
    assert len(buf) == 5 and buf.pushed == 12 and buf.ptr == 12 % 5
    assert sorted(buf.rewards.tolist()) == [7.0, 8.0, 9.0, 10.0, 11.0]
    # every slot is a consistent transition: obs, action, next_obs and done all belong to the same push
    np.testing.assert_array_equal(buf.obs[:, 0], buf.rewards)
    np.testing.assert_array_equal(buf.next_obs[:, 0], buf.rewards + 0.5)
    np.testing.assert_array_equal(buf.actions, buf.rewards.astype(int) % 3)
    np.testing.assert_array_equal(buf.dones, (buf.rewards.astype(int) % 4 == 0).astype(np.float32))
    assert buf.rewards[(buf.ptr - 1) % 5] == 11.0  # the newest sits just before the write pointer
    batch = buf.sample(5)
    assert sorted(batch.rewards.tolist()) == [7.0, 8.0, 9.0, 10.0, 11.0]  # no repeats within a batch
    with pytest.raises(ValueError):
        buf.sample(6)


def test_replay_buffer_samples_only_stored_transitions() -> None:
    buf = ReplayBuffer(capacity=100, obs_dim=2, seed=1)
    for i in range(7):
        _push(buf, i)
    for _ in range(50):
        b = buf.sample(4)
        assert len(set(b.indices.tolist())) == 4 and (b.indices < 7).all()
        assert set(b.rewards.tolist()) <= set(map(float, range(7)))
        np.testing.assert_array_equal(b.obs[:, 0], b.rewards)
    with pytest.raises(ValueError):
        buf.sample(8)
    with pytest.raises(ValueError):
        ReplayBuffer(0, 2)


def test_replay_buffer_reproducible_with_seed() -> None:
    def draws(seed: int) -> list[list[int]]:
        buf = ReplayBuffer(capacity=50, obs_dim=1, seed=seed)
        for i in range(80):
            _push(buf, i)
        return [buf.sample(8).indices.tolist() for _ in range(10)]

    assert draws(3) == draws(3)
    assert draws(3) != draws(4)


# ------------------------------------------------------------------------------------------------ agent
def _random_batch(rng: np.random.Generator, n: int, obs_dim: int, n_actions: int) -> Batch:
    return Batch(
        rng.standard_normal((n, obs_dim)).astype(np.float32),
        rng.integers(n_actions, size=n),
        rng.standard_normal(n).astype(np.float32),
        rng.standard_normal((n, obs_dim)).astype(np.float32),
        (rng.random(n) < 0.2).astype(np.float32),
        np.arange(n),
    )


def _params(net: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def _equal(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_hard_target_update_frozen_between_syncs() -> None:
    agent = DQNAgent(6, 4, DQNConfig(target_update=3, tau=None, lr=1e-2, **SMALL))
    rng = np.random.default_rng(0)
    assert _equal(_params(agent.target), _params(agent.online))
    assert not any(p.requires_grad for p in agent.target.parameters())
    synced = _params(agent.target)
    for step in range(1, 10):
        agent.learn(_random_batch(rng, 16, 6, 4))
        target, online = _params(agent.target), _params(agent.online)
        if step % 3 == 0:
            assert _equal(target, online)  # right after a sync: target == online
            synced = target
        else:
            assert _equal(target, synced)  # frozen between syncs
            assert not _equal(target, online)  # while the online net moved
    assert agent.updates == 9 and agent.target_syncs == 3


def test_soft_target_update_moves_by_tau() -> None:
    tau = 0.2
    agent = DQNAgent(6, 4, DQNConfig(tau=tau, lr=1e-2, **SMALL))
    rng = np.random.default_rng(1)
    for _ in range(4):
        before = _params(agent.target)
        agent.learn(_random_batch(rng, 16, 6, 4))
        after, online = _params(agent.target), _params(agent.online)
        for b, a, o in zip(before, after, online, strict=True):
            torch.testing.assert_close(a, b + tau * (o - b), rtol=0, atol=1e-7)
        assert not _equal(after, online) and not _equal(after, before)


@pytest.mark.parametrize("double", [True, False])
def test_learn_uses_double_dqn_huber_target(double: bool) -> None:
    cfg = DQNConfig(gamma=0.9, huber_delta=1.0, double=double, target_update=10**6, **SMALL)
    agent = DQNAgent(5, 3, cfg)
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():  # make the target net differ from the online net (seeded)
        for p in agent.target.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen))
    batch = _random_batch(np.random.default_rng(2), 32, 5, 3)
    with torch_context(cfg.threads), torch.no_grad():  # the same thread count as learn(): same rounding
        obs, nxt = torch.as_tensor(batch.obs), torch.as_tensor(batch.next_obs)
        q = agent.online(obs).gather(1, torch.as_tensor(batch.actions)[:, None]).squeeze(1)
        if double:
            a_star = agent.online(nxt).argmax(1, keepdim=True)
            q_next = agent.target(nxt).gather(1, a_star).squeeze(1)
        else:
            q_next = agent.target(nxt).max(1).values
        y = torch.as_tensor(batch.rewards) + 0.9 * (1 - torch.as_tensor(batch.dones)) * q_next
        expected = torch.nn.functional.huber_loss(q, y, delta=1.0).item()
    assert agent.learn(batch) == pytest.approx(expected, rel=1e-6)


def test_epsilon_decays_linearly_and_greedy_act() -> None:
    agent = DQNAgent(4, 5, DQNConfig(eps_start=1.0, eps_end=0.1, eps_decay_steps=100, **SMALL))
    assert agent.epsilon == 1.0
    obs = np.zeros(4, dtype=np.float32)
    for _ in range(50):
        agent.act(obs)
    assert agent.epsilon == pytest.approx(0.55)
    for _ in range(100):
        agent.act(obs)
    assert agent.epsilon == pytest.approx(0.1)
    assert agent.act(obs, greedy=True) == int(np.argmax(agent.q_values(obs)))
    assert agent.steps == 150  # greedy acting does not advance the schedule


def test_agent_save_load(tmp_path: Path) -> None:
    agent = DQNAgent(4, 3, DQNConfig(**SMALL))
    agent.learn(_random_batch(np.random.default_rng(0), 8, 4, 3))
    agent.save(tmp_path / "agent")
    loaded = DQNAgent.load(tmp_path / "agent")
    obs = np.random.default_rng(1).standard_normal((10, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded.q_values(obs), agent.q_values(obs))
    assert loaded.config == agent.config and loaded.updates == 1


# ------------------------------------------------------------------------------------------------ environment
def _env(prices: np.ndarray, **cfg: Any) -> TradingEnv:
    base: dict[str, Any] = {
        "window": 3,
        "vol_window": 3,
        "fee_bps": 0.0,
        "slippage_bps": 0.0,
        "reward": "log_return",
    }
    return TradingEnv(prices, config=TradingEnvConfig(**{**base, **cfg}))


def _walk(T: int, n: int, seed: int = 0, drift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100 * np.exp(np.cumsum(drift + 0.01 * rng.standard_normal((T, n)), axis=0))


def test_joint_action_space_encoding() -> None:
    env = _env(_walk(40, 3))
    assert env.n_actions == 125 and env.obs_dim == 3 * 3 + 3
    for a in (0, 1, 5, 62, 124):
        assert env.encode_action(env.decode_action(a)) == a
    np.testing.assert_array_equal(env.decode_action(0), [-1, -1, -1])
    np.testing.assert_array_equal(env.decode_action(124), [1, 1, 1])
    np.testing.assert_array_equal(env.decode_action(env.encode_action([1, 0, -0.5])), [1, 0, -0.5])
    with pytest.raises(ValueError):
        env.decode_action(125)
    with pytest.raises(ValueError, match="joint actions"):
        _env(_walk(40, 6))  # 5^6 > 4096


def test_fees_equal_bps_times_traded_notional() -> None:
    prices = _walk(30, 2, seed=3)
    env = _env(prices, fee_bps=10.0, max_position=(1.0, 2.0))
    env.reset()
    t = env.t
    # flat -> (+1 x 1.0, -0.5 x 2.0): traded notional = (1 + 1) x equity 1.0
    _, _, _, info = env.step(env.encode_action([1.0, -0.5]))
    assert info["traded_notional"] == pytest.approx(2.0, abs=1e-15)
    assert info["fees"] == pytest.approx(10e-4 * 2.0, rel=1e-15)
    r = prices[t + 1] / prices[t] - 1
    port = 1.0 * r[0] - 1.0 * r[1] - 10e-4 * 2.0
    assert info["port_return"] == pytest.approx(port, rel=1e-12)
    assert env.equity == pytest.approx(1.0 + port, rel=1e-12)
    # the next trade is measured from the DRIFTED weights
    w = np.array([1.0, -1.0]) * (1 + r) / (1 + port)
    equity = env.equity
    _, _, _, info = env.step(env.encode_action([0.5, 0.0]))
    notional = (abs(0.5 - w[0]) + abs(0.0 - w[1])) * equity
    assert info["traded_notional"] == pytest.approx(notional, rel=1e-12)
    assert info["fees"] == pytest.approx(10e-4 * notional, rel=1e-12)
    # holding the same level trades only the drift back to target; flat -> flat trades nothing
    env.reset()
    flat = env.encode_action([0.0, 0.0])
    _, _, _, info = env.step(flat)
    assert info["traded_notional"] == 0.0 and info["fees"] == 0.0 and info["port_return"] == 0.0


def test_slippage_fixed_size_and_vol_terms() -> None:
    prices = _walk(30, 1, seed=4)
    env = _env(prices, slippage_bps=5.0, slippage_size_coef=0.001, slippage_vol_coef=0.5)
    env.reset()
    vol = env.vol[env.t, 0]
    _, _, _, info = env.step(env.encode_action([-0.5]))
    assert info["fees"] == 0.0
    assert info["slippage"] == pytest.approx((5e-4 + 0.5 * vol + 0.001 * 0.5) * 0.5, rel=1e-12)


def test_position_taken_at_t_earns_t_to_t_plus_1() -> None:
    prices = np.full((30, 1), 100.0)
    k = 12
    prices[k + 1 :] = 110.0  # the only move: bar k -> k+1, +10%
    env = _env(prices)
    long_, flat = env.encode_action([1.0]), env.encode_action([0.0])

    def run(long_at: set[int]) -> tuple[float, list[float]]:
        env.reset()
        rets = []
        done = False
        while not done:
            _, _, done, info = env.step(long_ if env.t in long_at else flat)
            rets.append(info["port_return"])
        return env.equity, rets

    equity, rets = run({k})
    assert equity == pytest.approx(1.10, rel=1e-12)  # long decided at close k earns the k -> k+1 move
    assert rets[k - env.first_t] == pytest.approx(0.10, rel=1e-12)
    assert run({k + 1})[0] == pytest.approx(1.0)  # decided after the move: too late
    assert run({k - 1})[0] == pytest.approx(1.0)  # held over k-1 -> k only: nothing


def test_agent_that_sees_the_closing_bar_cannot_profit() -> None:
    """A 'peeking' agent reads the return of the bar that just closed (what a look-ahead bug would let it
    trade): on an alternating series it loses every bar, because its position earns the NEXT bar."""
    T = 60
    steps = np.where(np.arange(T) % 2 == 0, 0.01, -0.01)
    prices = (100 * np.cumprod(1 + steps))[:, None]
    env = _env(prices)

    def peeker(obs: np.ndarray, e: TradingEnv) -> int:
        last = e.prices[e.t, 0] / e.prices[e.t - 1, 0] - 1
        return e.encode_action([1.0 if last > 0 else -1.0])

    def oracle(obs: np.ndarray, e: TradingEnv) -> int:  # the test can fail: a real look-ahead would win
        nxt = e.prices[e.t + 1, 0] / e.prices[e.t, 0] - 1
        return e.encode_action([1.0 if nxt > 0 else -1.0])

    peek = evaluate_policy(peeker, env)
    assert peek["total_return"] < 0
    np.testing.assert_allclose(peek["returns"], -0.01, rtol=1e-9)
    assert evaluate_policy(oracle, env)["total_return"] > 0.5


def test_observation_is_causal() -> None:
    prices = _walk(80, 2, seed=5)
    future_changed = prices.copy()
    future_changed[41:] *= 1.5
    a, b = _env(prices, window=5, vol_window=10), _env(future_changed, window=5, vol_window=10)
    oa, ob = a.reset(), b.reset()
    act = a.encode_action([0.5, -1.0])
    while a.t <= 40:
        np.testing.assert_array_equal(oa, ob)
        oa, _, _, _ = a.step(act)
        ob, _, _, _ = b.step(act)
    assert not np.array_equal(oa, ob)  # at t = 41 the change is visible


def test_vol_targeting_scales_positions() -> None:
    prices = _walk(60, 2, seed=6)
    env = _env(prices, vol_window=10, vol_target=0.005, max_vol_scale=3.0, max_position=0.5)
    env.reset()
    t = env.t
    expected_scale = np.minimum(0.005 / env.vol[t], 3.0)
    _, _, _, info = env.step(env.encode_action([1.0, -0.5]))
    np.testing.assert_allclose(info["positions"], np.array([1.0, -0.5]) * 0.5 * expected_scale, rtol=1e-12)
    assert info["traded_notional"] == pytest.approx(float(np.abs(info["positions"]).sum()), rel=1e-12)


def test_reward_modes() -> None:
    prices = _walk(60, 1, seed=7)
    logs = {}
    for mode in ("log_return", "mean_variance", "dsr"):
        env = _env(prices, reward=mode, risk_lambda=2.0, var_window=5)
        env.reset()
        rewards, lr = [], []
        for _ in range(20):
            _, reward, _, info = env.step(env.encode_action([1.0]))
            rewards.append(reward)
            lr.append(info["log_return"])
        logs[mode] = (np.array(rewards), np.array(lr))
    rew, lr = logs["log_return"]
    np.testing.assert_allclose(rew, 100 * lr, rtol=1e-12)
    rew, lr = logs["mean_variance"]
    expected = [lr[i] - 2.0 * (np.var(lr[max(0, i - 4) : i + 1]) if i >= 1 else 0.0) for i in range(20)]
    np.testing.assert_allclose(rew, 100 * np.array(expected), rtol=1e-9, atol=1e-15)
    rew, _ = logs["dsr"]
    assert np.isfinite(rew).all() and rew[0] == 0.0 and np.abs(rew[1:]).max() > 0


# ------------------------------------------------------------------------------------------------ training
def test_short_training_on_trend_beats_random() -> None:
    rng = np.random.default_rng(1)
    T = 300
    rets = np.column_stack([0.004 + 0.004 * rng.standard_normal(T), -0.004 + 0.004 * rng.standard_normal(T)])
    prices = 100 * np.exp(np.cumsum(rets, axis=0))
    env = TradingEnv(
        prices,
        config=TradingEnvConfig(
            window=4, levels=(-1.0, 0.0, 1.0), fee_bps=1.0, slippage_bps=1.0, reward="mean_variance"
        ),
    )
    cfg = DQNConfig(
        total_steps=1500,
        learning_starts=200,
        eps_decay_steps=1000,
        target_update=100,
        gamma=0.9,
        batch_size=32,
        log_every=500,
        **SMALL,
    )
    seen: list[int] = []
    agent, log = train_dqn(env, cfg, progress=lambda step, info: seen.append(step))
    assert seen == [500, 1000, 1500]
    assert log["updates"] == 1500 - 200 + 1 and log["target_syncs"] == log["updates"] // 100
    assert len(log["losses"]) == log["updates"] and all(math.isfinite(v) for v in log["losses"])
    trained = evaluate_policy(agent, env)
    random_ = evaluate_policy(RandomPolicy(env.n_actions, seed=0), env)
    assert trained["n_steps"] == random_["n_steps"] == env.T - 1 - env.first_t
    assert len(trained["equity_curve"]) == trained["n_steps"] + 1
    assert trained["total_return"] > 0.5 and trained["total_return"] > random_["total_return"] + 0.5
    assert trained["sharpe"] > random_["sharpe"]
    assert trained["turnover"] < random_["turnover"]
    assert trained["fees_paid"] == pytest.approx(1e-4 * trained["traded_notional"], rel=1e-12)
    assert trained["slippage_paid"] == pytest.approx(1e-4 * trained["traded_notional"], rel=1e-12)
    # seeded: the same config trains the same agent
    again, _ = train_dqn(env, cfg)
    obs = env.reset()
    np.testing.assert_array_equal(again.q_values(obs), agent.q_values(obs))
