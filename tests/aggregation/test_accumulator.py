"""WeightedSum against a dense reference; order independence; merge equality; serialisation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.sparse_updates import Sparse, random_update, ref_weighted_mean

from fmfl.aggregation import CorruptState, FedAvg, RejectedUpdate, WeightedSum, make_strategy


def _updates(seed: int, n: int, size: int, *, dyadic: bool) -> tuple[list[Sparse], list[float]]:
    rng = np.random.default_rng(seed)
    ups = [random_update(rng, size, int(rng.integers(0, size + 1)), dyadic=dyadic) for _ in range(n)]
    weights = [float(rng.integers(1, 1_000)) for _ in range(n)]
    return ups, weights


def _sum(ups: list[Sparse], weights: list[float], order: list[int] | None = None) -> WeightedSum:
    acc = WeightedSum(ups[0].size)
    for i in order if order is not None else range(len(ups)):
        acc.add(ups[i].indices, ups[i].values, weights[i])
    return acc


@settings(max_examples=40)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 12), size=st.integers(1, 300))
def test_mean_matches_dense_reference(seed: int, n: int, size: int) -> None:
    ups, weights = _updates(seed, n, size, dyadic=False)
    np.testing.assert_allclose(
        _sum(ups, weights).mean(), ref_weighted_mean(ups, weights), rtol=1e-12, atol=1e-12
    )


@settings(max_examples=30)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 12), size=st.integers(1, 200))
def test_order_independent_bit_for_bit_with_exact_sums(seed: int, n: int, size: int) -> None:
    ups, weights = _updates(seed, n, size, dyadic=True)
    order = np.random.default_rng(seed + 1).permutation(n).tolist()
    assert _sum(ups, weights).to_bytes() == _sum(ups, weights, order).to_bytes()


def test_order_independent_within_float64_rounding_in_general() -> None:
    ups, weights = _updates(7, 50, 500, dyadic=False)
    a, b = _sum(ups, weights).mean(), _sum(ups, weights, list(range(49, -1, -1))).mean()
    np.testing.assert_allclose(a, b, rtol=50 * 2**-52, atol=1e-300)


@settings(max_examples=30)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 16), workers=st.integers(2, 5))
def test_merged_partial_sums_equal_single_worker(seed: int, n: int, workers: int) -> None:
    # Prepare: the stream split across workers as an MQTT shared subscription would.
    ups, weights = _updates(seed, n, 128, dyadic=True)
    owner = np.random.default_rng(seed).integers(0, workers, size=n)
    parts = [WeightedSum(128) for _ in range(workers)]
    for i, u in enumerate(ups):
        parts[owner[i]].add(u.indices, u.values, weights[i])
    # Execute: partials travel as bytes, as they would between processes.
    merged = WeightedSum.from_bytes(parts[0].to_bytes())
    for p in parts[1:]:
        merged.merge(WeightedSum.from_bytes(p.to_bytes()))
    # Assert
    single = _sum(ups, weights)
    assert merged.to_bytes() == single.to_bytes()
    assert merged.count == n
    assert merged.total_weight == sum(weights)
    assert np.array_equal(merged.mean(), single.mean())


@pytest.mark.parametrize("rule", ["fedavg", "fedadam", "median", "krum"])
def test_strategy_round_merge_equals_single_worker(rule: str) -> None:
    ups, weights = _updates(3, 9, 96, dyadic=True)
    g = np.random.default_rng(0).standard_normal(96).astype(np.float32)
    options = {"num_byzantine": 1} if rule == "krum" else {}
    single, w1, w2 = (make_strategy(rule, **options) for _ in range(3))
    for s in (single, w1, w2):
        s.begin_round(g)
    for i, u in enumerate(ups):
        single.accept(u, weights[i], f"c{i}")
        (w1 if i % 3 else w2).accept(u, weights[i], f"c{i}")
    w1.merge_round(w2.round_bytes())
    assert w1.clients == single.clients
    assert np.array_equal(w1.aggregate(), single.aggregate())


def test_merge_round_refuses_overlapping_clients_and_changes_nothing() -> None:
    ups, weights = _updates(4, 2, 32, dyadic=True)
    a, b = FedAvg(), FedAvg()
    for s in (a, b):
        s.begin_round(np.zeros(32, np.float32))
        s.accept(ups[0], weights[0], "same")
    before = a.round_bytes()
    with pytest.raises(RejectedUpdate, match="repeats clients"):
        a.merge_round(b.round_bytes())
    assert a.round_bytes() == before


def test_serialisation_is_sparse_and_exact() -> None:
    acc = WeightedSum(1_000_000)
    acc.add(np.array([3, 999_999]), np.array([1.5, -2.25], np.float32), 3.0)
    data = acc.to_bytes()
    assert len(data) < 2_000  # nonzeros only, not 8 MB of float64
    back = WeightedSum.from_bytes(data)
    assert np.array_equal(back.sum, acc.sum)
    assert back.count == 1
    assert back.total_weight == 3.0


@pytest.mark.parametrize("data", [b"", b"not an npz", WeightedSum(4).to_bytes()[:50]])
def test_corrupt_bytes_raise_corrupt_state(data: bytes) -> None:
    with pytest.raises(CorruptState):
        WeightedSum.from_bytes(data)


def test_wrong_kind_is_refused() -> None:
    s = FedAvg()
    s.begin_round(np.zeros(4, np.float32))
    with pytest.raises(CorruptState, match="expected weighted-sum"):
        WeightedSum.from_bytes(s.round_bytes())


def test_merge_of_different_sizes_is_refused() -> None:
    with pytest.raises(ValueError, match="size"):
        WeightedSum(4).merge(WeightedSum(5))


def test_mean_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        WeightedSum(4).mean()


def test_sum_view_is_read_only() -> None:
    acc = WeightedSum(4)
    with pytest.raises(ValueError, match="read-only"):
        acc.sum[0] = 1.0
