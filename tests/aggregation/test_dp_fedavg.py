"""DP-FedAvg at the aggregator: oracle, clipping, noise, adaptive clipping, exact resume, refusals."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.sparse_updates import Sparse, dense, random_update

from fmfl.aggregation import CorruptState, DpFedAvg, RoundStateError, make_strategy
from fmfl.aggregation.rules.dp_fedavg import round_rng
from fmfl.aggregator import UpdateLog

SIZE = 64


def _dp(**overrides: Any) -> DpFedAvg:
    options: dict[str, Any] = {"noise_multiplier": 1.0, "clip_norm": 1.0, "expected_clients": 4, "seed": 11}
    options.update(overrides)
    strategy = make_strategy("dp_fedavg", **options)
    assert isinstance(strategy, DpFedAvg)
    return strategy


def _updates(seed: int, n: int, scale: float = 0.5) -> list[Sparse]:
    rng = np.random.default_rng(seed)
    return [random_update(rng, SIZE, int(rng.integers(1, SIZE + 1)), scale=scale) for _ in range(n)]


def _run(strategy: DpFedAvg, g: np.ndarray, ups: list[Sparse]) -> np.ndarray:
    strategy.begin_round(g)
    for i, u in enumerate(ups):
        strategy.accept(u, float(10 + i), f"c{i}")  # sample counts differ: DP-FedAvg must ignore them
    return strategy.aggregate()


def _reference(g: np.ndarray, ups: list[Sparse], clip: float, z: float, denominator: int, seed: int, r: int) -> Any:
    """Slow and obvious: clip each dense delta, sum, divide by the fixed denominator, add the noise."""
    total = np.zeros(SIZE)
    for u in ups:
        d = dense(u)
        norm = np.sqrt(sum(float(x) ** 2 for x in d))
        total += d * min(1.0, clip / norm) if norm > 0 else d
    rng = round_rng(np.array([seed, 0, 0, 0], dtype=np.uint32), r)
    noise = rng.normal(0.0, z * clip / denominator, size=SIZE)
    return (g.astype(np.float64) + total / denominator + noise).astype(np.float32)


def test_aggregate_matches_the_slow_reference_over_rounds() -> None:
    # Prepare: two rounds of 3 updates (fewer than the denominator 4), some above the clip norm.
    strategy = _dp(noise_multiplier=0.7, clip_norm=2.0)
    g = np.random.default_rng(1).standard_normal(SIZE).astype(np.float32)
    for r in range(2):
        ups = _updates(100 + r, 3, scale=0.5)
        assert any(np.linalg.norm(u.values) > 2.0 for u in ups)
        assert any(np.linalg.norm(u.values) <= 2.0 for u in ups)
        # Execute
        new = _run(strategy, g, ups)
        # Assert
        np.testing.assert_allclose(new, _reference(g, ups, 2.0, 0.7, 4, 11, r), rtol=0, atol=2e-6)
        g = new
    m = strategy.round_metrics()
    assert m["dp_clip_norm"] == 2.0
    assert m["dp_noise_stddev"] == pytest.approx(0.7 * 2.0 / 4)
    assert 0.0 < m["dp_unclipped_fraction"] < 1.0


@settings(max_examples=40)
@given(
    clip=st.floats(0.01, 10.0),
    scale=st.floats(0.001, 5.0),
    n=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_no_client_moves_the_mean_by_more_than_clip_over_denominator(
    clip: float, scale: float, n: int, seed: int
) -> None:
    # With the noise removed (the same seeded draw, subtracted), the step is the clipped sum / D, so each
    # client's share has norm <= C / D and the whole step <= n C / D; unclipped deltas pass unchanged.
    ups = _updates(seed, n, scale=scale)
    strategy = _dp(clip_norm=clip, expected_clients=6, seed=seed)
    g = np.zeros(SIZE, np.float32)
    new = _run(strategy, g, ups).astype(np.float64)
    noise = round_rng(np.array([seed, 0, 0, 0], dtype=np.uint32), 0).normal(0.0, clip / 6, size=SIZE)
    step = new - noise
    clipped = [dense(u) * min(1.0, clip / max(np.linalg.norm(dense(u)), 1e-300)) for u in ups]
    for c in clipped:
        assert np.linalg.norm(c) <= clip * (1 + 1e-6)
    np.testing.assert_allclose(step, sum(clipped) / 6, atol=1e-5 * max(1.0, clip))
    assert np.linalg.norm(step) <= n * clip / 6 * (1 + 1e-5) + 1e-5


def test_noise_has_the_stated_standard_deviation() -> None:
    # 4 rounds of one zero delta on 50,000 coordinates: what moved the model is the noise alone.
    strategy = _dp(noise_multiplier=1.5, clip_norm=0.2, expected_clients=5)
    size = 50_000
    g = np.zeros(size, np.float32)
    zero = Sparse(np.array([0], dtype=np.int64), np.zeros(1, np.float32), size)
    samples = []
    for _ in range(4):
        strategy.begin_round(g)
        strategy.accept(zero, 1.0, "c0")
        new = strategy.aggregate()
        samples.append(new.astype(np.float64) - g)
        g = new
    x = np.concatenate(samples)
    expected = 1.5 * 0.2 / 5
    # 200,000 draws: the sample std is within 1% of sigma with overwhelming probability (fixed seed anyway).
    assert x.std() == pytest.approx(expected, rel=0.01)
    assert abs(x.mean()) < 5 * expected / np.sqrt(x.size)
    assert not np.array_equal(samples[0], samples[1])  # a fresh draw each round


def test_adaptive_clip_converges_toward_the_target_quantile() -> None:
    # Synthetic norms: 20 clients per round whose update norms are uniform on [1, 3] (median 2).
    rng = np.random.default_rng(5)
    strategy = _dp(
        noise_multiplier=0.5, clip_norm=0.1, expected_clients=20, adaptive_clip=True,
        target_quantile=0.5, clip_learning_rate=0.2,
    )
    g = np.zeros(SIZE, np.float32)
    history = []
    for _ in range(150):
        ups = []
        for _ in range(20):
            direction = rng.standard_normal(SIZE)
            values = direction / np.linalg.norm(direction) * rng.uniform(1, 3)
            ups.append(Sparse(np.arange(SIZE), values.astype(np.float32), SIZE))
        g = _run(strategy, g, ups)
        history.append(strategy.round_metrics()["dp_clip_norm"])
    assert history[0] == pytest.approx(0.1)
    late = np.array(history[-50:])
    assert abs(float(np.median(late)) - 2.0) < 0.3  # the median of U[1, 3]
    assert strategy.clip_norm == pytest.approx(strategy.round_metrics()["dp_next_clip_norm"])


def test_adaptive_clip_splits_the_noise_multiplier_as_in_the_paper() -> None:
    strategy = _dp(noise_multiplier=1.0, expected_clients=40, adaptive_clip=True)  # sigma_b = 40/20 = 2
    assert strategy.update_multiplier == pytest.approx((1.0 - 1 / 16) ** -0.5)
    with pytest.raises(ValueError, match=r"clipped_count_stddev > noise_multiplier / 2"):
        _dp(noise_multiplier=1.0, expected_clients=10, adaptive_clip=True)  # sigma_b = 0.5


def test_state_dict_round_trip_and_wal_replay_after_a_crash_give_the_same_model(tmp_path: Path) -> None:
    # Prepare: 3 rounds uninterrupted, with adaptive clipping and a secret (OS-drawn) noise seed.
    opts: dict[str, Any] = {"noise_multiplier": 0.5, "clip_norm": 0.3, "expected_clients": 10,
                            "adaptive_clip": True, "seed": None}
    rounds = [_updates(300 + r, 5) for r in range(3)]
    g0 = np.random.default_rng(3).standard_normal(SIZE).astype(np.float32)
    straight = make_strategy("dp-fedavg", **opts)
    initial_state = {k: v.copy() for k, v in straight.state_dict().items()}  # what version 0 is saved with
    g = g0
    for ups in rounds:
        g = _run(straight, g, ups)  # type: ignore[arg-type]
    # Execute: a second process on the same saved state runs round 0, crashes in round 1 after logging
    # 3 of 5 updates; a third loads the state saved with version 1, replays the WAL, takes the rest.
    first = make_strategy("dp-fedavg", **opts)
    first.load_state_dict(initial_state)
    g1 = _run(first, g0, rounds[0])  # type: ignore[arg-type]
    buf = io.BytesIO()
    np.savez(buf, **first.state_dict())
    with UpdateLog(tmp_path / "wal.db") as log:
        for i, u in enumerate(rounds[1][:3]):
            log.append(round=1, client_id=f"c{i}", update_id=f"u{i}", weight=float(10 + i),
                       indices=u.indices, values=u.values, size=SIZE)
    del first  # the crash
    resumed = make_strategy("dp-fedavg", **opts)
    with np.load(io.BytesIO(buf.getvalue()), allow_pickle=False) as saved:
        resumed.load_state_dict({k: saved[k] for k in saved.files})
    resumed.begin_round(g1)
    with UpdateLog(tmp_path / "wal.db") as log:
        assert len(log.replay(1, resumed).fed) == 3
    for i, u in enumerate(rounds[1][3:], start=3):
        resumed.accept(u, float(10 + i), f"c{i}")
    g2 = resumed.aggregate()
    g3 = _run(resumed, g2, rounds[2])  # type: ignore[arg-type]
    # Assert: bit for bit, clip norm and epsilon too.
    assert np.array_equal(g3, g)
    assert resumed.state_dict()["clip_norm"] == straight.state_dict()["clip_norm"]
    assert resumed.round_metrics()["dp_epsilon"] == straight.round_metrics()["dp_epsilon"]


def test_two_runs_without_a_seed_draw_different_noise() -> None:
    ups = _updates(9, 2)
    g = np.zeros(SIZE, np.float32)
    a = _run(_dp(seed=None), g, ups)
    b = _run(_dp(seed=None), g, ups)
    assert not np.array_equal(a, b)


def test_epsilon_is_reported_every_round_and_grows() -> None:
    strategy = _dp(noise_multiplier=1.0, sampling_rate=0.1, delta=1e-5)
    g = np.zeros(SIZE, np.float32)
    eps = []
    for r in range(3):
        g = _run(strategy, g, _updates(r, 2))
        eps.append(strategy.round_metrics()["dp_epsilon"])
    assert 0 < eps[0] < eps[1] < eps[2]
    assert strategy.round_metrics()["dp_delta"] == 1e-5
    strategy.begin_round(g)  # a round that then fails: nothing of the last round is reported for it
    assert strategy.round_metrics() == {"dp_epsilon": eps[2], "dp_delta": 1e-5, "dp_noise_multiplier": 1.0,
                                        "dp_sampling_rate": 0.1}  # fmt: skip


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"noise_multiplier": 0.0}, "noise_multiplier must be a positive finite number"),
        ({"clip_norm": -1.0}, "clip_norm must be a positive finite number"),
        ({"expected_clients": 0}, "expected_clients must be a positive integer"),
        ({"sampling_rate": 1.5}, r"sampling_rate must be in \(0, 1\]"),
        ({"delta": 1.0}, r"delta must be in \(0, 1\)"),
        ({"accounting_sampling": "shuffle"}, "accounting_sampling must be one of poisson, fixed-size"),
        ({"accounting_sampling": "fixed-size"}, "fixed-size sampling needs fleet_size"),
        ({"accounting_sampling": "fixed-size", "fleet_size": 10, "sampling_rate": 0.25}, "whole number"),
        ({"clipped_count_stddev": 1.0}, "clipped_count_stddev is an adaptive-clipping option"),
        ({"adaptive_clip": True, "target_quantile": 1.0}, r"target_quantile must be in \(0, 1\)"),
        ({"adaptive_clip": True, "clip_learning_rate": 0.0}, "clip_learning_rate must be a positive"),
        ({"seed": -1}, r"seed must be an integer in \[0, 2\*\*128\)"),
    ],
)
def test_bad_options_are_refused_by_name(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _dp(**options)


def test_missing_required_options_are_named() -> None:
    with pytest.raises(ValueError, match="needs option clip_norm, expected_clients, noise_multiplier"):
        make_strategy("dp_fedavg")


def test_partial_rounds_are_refused_and_the_round_is_unchanged() -> None:
    strategy = _dp()
    ups = _updates(1, 2)
    strategy.begin_round(np.zeros(SIZE, np.float32))
    strategy.accept(ups[0], 1.0, "c0")
    with pytest.raises(RoundStateError, match="does not support partial rounds"):
        strategy.round_bytes()
    assert strategy.clients == frozenset({"c0"})
    strategy.accept(ups[1], 1.0, "c1")
    assert strategy.aggregate().shape == (SIZE,)


def test_corrupt_state_is_refused_and_the_clip_norm_kept() -> None:
    strategy = _dp(clip_norm=0.5)
    state = strategy.state_dict()
    bad = dict(state, clip_norm=np.array(-1.0))
    with pytest.raises(CorruptState, match="clip_norm"):
        strategy.load_state_dict(bad)
    with pytest.raises(CorruptState, match="noise_seed"):
        strategy.load_state_dict(dict(state, noise_seed=np.zeros(2, np.uint32)))
    assert strategy.clip_norm == 0.5
    assert np.array_equal(strategy.state_dict()["noise_seed"], state["noise_seed"])


def test_a_changed_fixed_clip_on_resume_is_overridden_by_the_saved_one_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    saved = _dp(clip_norm=0.5).state_dict()
    resumed = _dp(clip_norm=2.0)
    with caplog.at_level("WARNING", logger="fmfl.aggregation.rules.dp_fedavg"):
        resumed.load_state_dict(saved)
    assert resumed.clip_norm == 0.5
    assert "resuming with the saved clip norm 0.5, not the configured 2" in caplog.text
