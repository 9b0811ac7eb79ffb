"""Every rule against a slow dense reference; server state resumes exactly; registry errors."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.sparse_updates import (
    Sparse,
    dense,
    random_update,
    ref_krum_scores,
    ref_median,
    ref_trimmed_mean,
    ref_weighted_mean,
)

from fmfl.aggregation import (
    STRATEGIES,
    CorruptState,
    FedAvg,
    Krum,
    MultiKrum,
    RoundStateError,
    Strategy,
    make_strategy,
    staleness_weight,
    strategy_options,
)
from fmfl.aggregation.rules import multikrum
from fmfl.aggregation.rules.multikrum import krum_scores, pairwise_sq_distances

SIZE = 120


def _round(seed: int, n: int, size: int = SIZE) -> tuple[np.ndarray, list[Sparse], list[float]]:
    rng = np.random.default_rng(seed)
    g = rng.standard_normal(size).astype(np.float32)
    ups = [random_update(rng, size, int(rng.integers(0, size + 1)), scale=0.1) for _ in range(n)]
    return g, ups, [float(rng.integers(1, 500)) for _ in range(n)]


def _run(strategy: Strategy, g: np.ndarray, ups: list[Sparse], weights: list[float]) -> np.ndarray:
    strategy.begin_round(g)
    for i, (u, w) in enumerate(zip(ups, weights, strict=True)):
        strategy.accept(u, w, f"client-{i:03d}")
    return strategy.aggregate()


def _ref_fedopt(
    variant: str, rounds: list[tuple[np.ndarray, list[Sparse], list[float]]], **hp: float
) -> list:
    """Reddi et al. 2021, Algorithm 2, written out densely; each round starts from the previous output."""
    lr, b1, b2, tau = hp["server_lr"], hp["beta1"], hp.get("beta2", 0.0), hp["tau"]
    g = rounds[0][0].astype(np.float64)
    m, v = np.zeros_like(g), np.full_like(g, tau**2)
    outs = []
    for _, ups, weights in rounds:
        d = ref_weighted_mean(ups, weights)
        m = b1 * m + (1 - b1) * d
        if variant == "fedadam":
            v = b2 * v + (1 - b2) * d**2
        elif variant == "fedyogi":
            v = v - (1 - b2) * d**2 * np.sign(v - d**2)
        else:
            v = v + d**2
        g = (g + lr * m / (np.sqrt(v) + tau)).astype(np.float32).astype(np.float64)
        outs.append(g.astype(np.float32))
    return outs


@settings(max_examples=25)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 10), lr=st.sampled_from([1.0, 0.5]))
def test_fedavg_matches_reference(seed: int, n: int, lr: float) -> None:
    g, ups, weights = _round(seed, n)
    expected = (g + lr * ref_weighted_mean(ups, weights)).astype(np.float32)
    np.testing.assert_allclose(_run(FedAvg(server_lr=lr), g, ups, weights), expected, rtol=1e-6, atol=1e-7)


def test_fedavgm_matches_reference_over_rounds() -> None:
    strategy = make_strategy("fedavgm", server_lr=0.8, momentum=0.7)
    g, ups, weights = _round(1, 6)
    vel, ref = np.zeros(SIZE), g.astype(np.float64)
    for r in range(4):
        _, ups, weights = _round(10 + r, 6)
        out = _run(strategy, g, ups, weights)
        vel = 0.7 * vel + ref_weighted_mean(ups, weights)
        ref = g.astype(np.float64) + 0.8 * vel
        np.testing.assert_allclose(out, ref.astype(np.float32), rtol=1e-6, atol=1e-7)
        g = out


@pytest.mark.parametrize("variant", ["fedadam", "fedyogi", "fedadagrad"])
def test_adaptive_rules_match_reference_over_rounds(variant: str) -> None:
    hp: dict[str, float] = {"server_lr": 0.05, "beta1": 0.8, "tau": 1e-2}
    if variant != "fedadagrad":
        hp["beta2"] = 0.95
    rounds = [_round(20 + r, 5) for r in range(4)]
    expected = _ref_fedopt(variant, rounds, **hp)
    strategy, g = make_strategy(variant, **hp), rounds[0][0]
    for r, (_, ups, weights) in enumerate(rounds):
        g = _run(strategy, g, ups, weights)
        np.testing.assert_allclose(g, expected[r], rtol=1e-6, atol=1e-7)


@settings(max_examples=25)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 11), tiny_blocks=st.booleans())
def test_median_matches_reference(seed: int, n: int, tiny_blocks: bool) -> None:
    g, ups, weights = _round(seed, n)
    strategy = make_strategy("median", block_bytes=8 * n * 7 if tiny_blocks else 2**20)  # 7-coordinate blocks
    expected = (g + ref_median(ups)).astype(np.float32)
    np.testing.assert_allclose(_run(strategy, g, ups, weights), expected, rtol=1e-6, atol=1e-7)


@settings(max_examples=25)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 11), beta=st.sampled_from([0.0, 0.1, 0.25, 0.49]))
def test_trimmed_mean_matches_reference(seed: int, n: int, beta: float) -> None:
    g, ups, weights = _round(seed, n)
    strategy = make_strategy("trimmed-mean", beta=beta, block_bytes=8 * n * 13)
    expected = (g + ref_trimmed_mean(ups, beta)).astype(np.float32)
    np.testing.assert_allclose(_run(strategy, g, ups, weights), expected, rtol=1e-6, atol=1e-7)


@settings(max_examples=20)
@given(seed=st.integers(0, 2**32 - 1), f=st.integers(0, 2), extra=st.integers(0, 5))
def test_krum_scores_and_choice_match_reference(seed: int, f: int, extra: int) -> None:
    n = 2 * f + 3 + extra
    g, ups, weights = _round(seed, n)
    strategy = Krum(num_byzantine=f, block_bytes=8 * n * 11)
    out = _run(strategy, g, ups, weights)
    ref_scores = ref_krum_scores(ups, f)
    np.testing.assert_allclose(
        krum_scores(pairwise_sq_distances(strategy.buffer, 64), f), ref_scores, rtol=1e-9
    )
    winner = int(np.argmin(ref_scores))
    assert strategy.last_selected == (f"client-{winner:03d}",)
    np.testing.assert_array_equal(out, (g + dense(ups[winner])).astype(np.float32))


def test_multikrum_averages_the_best_and_drops_outliers() -> None:
    # Prepare: 7 honest deltas near +1, 2 attackers far away.
    rng = np.random.default_rng(5)
    honest = [
        Sparse(np.arange(SIZE), (1 + 0.01 * rng.standard_normal(SIZE)).astype(np.float32), SIZE)
        for _ in range(7)
    ]
    evil = [Sparse(np.arange(SIZE), np.full(SIZE, -50.0, np.float32), SIZE) for _ in range(2)]
    ups = honest + evil
    strategy = MultiKrum(num_byzantine=2)
    # Execute
    out = _run(strategy, np.zeros(SIZE, np.float32), ups, [1.0] * 9)
    # Assert: m = n - f = 7 selected, all honest, plain (unweighted) mean.
    assert strategy.last_selected == tuple(f"client-{i:03d}" for i in range(7))
    np.testing.assert_allclose(out, np.mean([dense(u) for u in honest], axis=0).astype(np.float32), rtol=1e-6)


def test_multikrum_with_explicit_selection_matches_reference() -> None:
    g, ups, weights = _round(8, 9)
    strategy = MultiKrum(num_byzantine=1, num_selected=4)
    out = _run(strategy, g, ups, weights)
    best = np.argsort(ref_krum_scores(ups, 1), kind="stable")[:4]
    expected = (g + np.mean([dense(ups[i]) for i in sorted(best)], axis=0)).astype(np.float32)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("rule", ["median", "trimmed-mean", "krum", "multi-krum"])
def test_robust_rules_do_not_depend_on_arrival_order(rule: str) -> None:
    g, ups, weights = _round(9, 8)
    options: dict[str, Any] = {"num_byzantine": 1} if "krum" in rule else {}
    a, b = make_strategy(rule, **options), make_strategy(rule, **options)
    a.begin_round(g)
    b.begin_round(g)
    for i in range(8):
        a.accept(ups[i], weights[i], f"c{i}")
    for i in reversed(range(8)):
        b.accept(ups[i], weights[i], f"c{i}")
    assert np.array_equal(a.aggregate(), b.aggregate())


def test_krum_with_too_few_updates_keeps_the_round_open() -> None:
    g, ups, weights = _round(2, 4)
    strategy = Krum(num_byzantine=1)
    strategy.begin_round(g)
    for i in range(4):
        strategy.accept(ups[i], weights[i], f"c{i}")
    with pytest.raises(RoundStateError, match="needs at least 5 updates, has 4"):
        strategy.aggregate()
    strategy.accept(random_update(np.random.default_rng(0), SIZE, 3), 1.0, "c4")
    assert strategy.aggregate().shape == (SIZE,)


@pytest.mark.parametrize("rule", sorted(STRATEGIES))
def test_state_dict_resumes_bit_for_bit(rule: str) -> None:
    # Prepare: three rounds straight through, versus two rounds, a save/load through npz bytes, one more.
    options: dict[str, Any] = {"num_byzantine": 1} if "krum" in rule else {}
    if rule == "dp-fedavg":  # noise from a fixed seed; adaptive clipping so the clip norm is state too
        options = {"noise_multiplier": 0.5, "clip_norm": 1.0, "expected_clients": 6, "seed": 7, "adaptive_clip": True}
    rounds = [_round(40 + r, 6) for r in range(3)]
    straight, g = make_strategy(rule, **options), rounds[0][0]
    for _, ups, weights in rounds:
        g = _run(straight, g, ups, weights)
    first, g2 = make_strategy(rule, **options), rounds[0][0]
    for _, ups, weights in rounds[:2]:
        g2 = _run(first, g2, ups, weights)
    buf = io.BytesIO()
    np.savez(buf, **first.state_dict())
    # Execute
    resumed = make_strategy(rule, **options)
    with np.load(io.BytesIO(buf.getvalue()), allow_pickle=False) as saved:
        resumed.load_state_dict({k: saved[k] for k in saved.files})
    g2 = _run(resumed, g2, *rounds[2][1:])
    # Assert
    assert np.array_equal(g, g2)
    assert resumed.rounds == 3


def test_state_of_another_model_size_is_refused() -> None:
    a = make_strategy("fedadam")
    _run(a, *_round(1, 2))
    b = make_strategy("fedadam")
    b.load_state_dict(a.state_dict())
    with pytest.raises(CorruptState, match="size"):
        b.begin_round(np.zeros(SIZE + 1, np.float32))


def test_round_order_is_enforced() -> None:
    s = FedAvg()
    with pytest.raises(RoundStateError, match="begin_round"):
        s.accept(Sparse(np.array([0]), np.ones(1, np.float32), 4), 1.0, "c")
    s.begin_round(np.zeros(4, np.float32))
    with pytest.raises(RoundStateError, match="no update"):
        s.aggregate()
    s.accept(Sparse(np.array([0]), np.ones(1, np.float32), 4), 1.0, "c")
    s.aggregate()
    with pytest.raises(RoundStateError):
        s.aggregate()


@pytest.mark.parametrize(
    "bad", [np.zeros((2, 2), np.float32), np.zeros(0, np.float32), np.arange(3), np.array([1.0, np.nan])]
)
def test_begin_round_checks_global_weights(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="global weights"):
        FedAvg().begin_round(bad)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("fedprox", {}, "unknown strategy 'fedprox'; choose one of: fedavg, fedavgm"),
        (
            "fedavg",
            {"momentum": 0.9},
            "strategy 'fedavg' has no option momentum; its options: server_lr, limits",
        ),
        ("fedadagrad", {"beta2": 0.9}, "has no option beta2"),
        ("krum", {}, "strategy 'krum' needs option num_byzantine"),
        ("fedadam", {"server_lr": 0.0}, "server_lr must be a positive finite number"),
        ("fedadam", {"beta1": 1.0}, r"beta1 must be in \[0, 1\)"),
        ("fedyogi", {"beta2": -0.1}, r"beta2 must be in \[0, 1\)"),
        ("fedadam", {"tau": 0}, "tau must be a positive"),
        ("fedavgm", {"momentum": 1.5}, "momentum"),
        ("trimmed-mean", {"beta": 0.5}, r"beta \(fraction trimmed from each end\) must be in \[0, 0.5\)"),
        ("median", {"max_buffered_clients": 0}, "max_buffered_clients must be a positive integer"),
        ("median", {"max_buffer_bytes": 1.5}, "max_buffer_bytes must be a positive integer"),
        ("krum", {"num_byzantine": -1}, "num_byzantine must be an integer >= 0"),
        ("multi-krum", {"num_byzantine": 1, "num_selected": 0}, "num_selected must be an integer >= 1"),
    ],
)
def test_registry_errors_are_precise(name: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_strategy(name, **options)


def test_registry_names() -> None:
    names = "fedavg fedavgm fedadam fedyogi fedadagrad trimmed-mean median krum multi-krum dp-fedavg"
    assert list(STRATEGIES) == names.split()
    assert strategy_options("fedadam")["beta2"].default == 0.99


def test_staleness_weight() -> None:
    assert staleness_weight(10, 0) == 10.0
    assert staleness_weight(10, 3) == pytest.approx(5.0)
    for bad_s in (-1, 1.5, True):
        with pytest.raises(ValueError, match="staleness"):
            staleness_weight(1.0, bad_s)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="weight"):
        staleness_weight(0.0, 1)


@pytest.mark.parametrize("path_factor", [0, 10**12], ids=["sparse-gram", "dense-blocks"])
@pytest.mark.parametrize("density", [0.02, 0.5, 1.0])
def test_both_distance_paths_match_explicit_differences(
    monkeypatch: pytest.MonkeyPatch, path_factor: int, density: float
) -> None:
    # Prepare: force one Gram path; many clients share coordinates at high density.
    monkeypatch.setattr(multikrum, "_ELEMENTWISE_VS_FLOP", path_factor)
    rng = np.random.default_rng(int(density * 100))
    ups = [random_update(rng, 400, max(1, int(400 * density))) for _ in range(9)]
    strategy = MultiKrum(num_byzantine=1, block_bytes=8 * 9 * 37)
    strategy.begin_round(np.zeros(400, np.float32))
    for i, u in enumerate(ups):
        strategy.accept(u, 1.0, f"client-{i}")
    # Execute
    dist = multikrum.pairwise_sq_distances(strategy.buffer, strategy.block_bytes)
    # Assert
    vs = [dense(u) for u in ups]
    expected = np.array([[np.sum((a - b) ** 2) for b in vs] for a in vs])
    np.testing.assert_allclose(dist, expected, rtol=1e-9, atol=1e-9)
