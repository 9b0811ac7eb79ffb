"""Dirichlet label-skew partition: coverage, determinism, sizes and skew as properties."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fmfl.datasets.partition import dirichlet_partition


@st.composite
def partition_cases(draw: st.DrawFn) -> tuple[np.ndarray, int, float, int, int]:
    num_classes = draw(st.integers(1, 12))
    num_clients = draw(st.integers(1, 20))
    min_size = draw(st.integers(1, 5))
    size = draw(st.integers(num_clients * min_size, 600))
    seed = draw(st.integers(0, 2**32 - 1))
    labels = np.random.default_rng(seed).integers(0, num_classes, size=size)
    alpha = draw(st.sampled_from([0.01, 0.1, 0.5, 1.0, 10.0, 1000.0]))
    return labels, num_clients, alpha, seed, min_size


@settings(max_examples=150)
@given(partition_cases())
def test_every_sample_once_every_client_filled(case: tuple[np.ndarray, int, float, int, int]) -> None:
    labels, num_clients, alpha, seed, min_size = case

    parts = dirichlet_partition(labels, num_clients, alpha, seed, min_size)

    assert len(parts) == num_clients
    assert all(part.dtype == np.int64 and np.all(np.diff(part) > 0) for part in parts)
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(len(labels)))
    assert min(len(part) for part in parts) >= min_size


@settings(max_examples=30)
@given(partition_cases())
def test_deterministic_in_its_arguments(case: tuple[np.ndarray, int, float, int, int]) -> None:
    labels, num_clients, alpha, seed, min_size = case

    first = dirichlet_partition(labels, num_clients, alpha, seed, min_size)
    second = dirichlet_partition(labels.copy(), num_clients, alpha, seed, min_size)

    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def _mean_label_entropy(labels: np.ndarray, parts: list[np.ndarray]) -> float:
    entropies = []
    for part in parts:
        p = np.bincount(labels[part], minlength=10) / len(part)
        p = p[p > 0]
        entropies.append(float(-(p * np.log(p)).sum()))
    return float(np.mean(entropies))


def test_smaller_alpha_means_more_skew() -> None:
    labels = np.repeat(np.arange(10), 500)

    skews = [
        _mean_label_entropy(labels, dirichlet_partition(labels, 10, alpha, seed=3))
        for alpha in (0.05, 0.5, 100.0)
    ]

    assert skews[0] < skews[1] < skews[2]
    assert skews[2] > 0.98 * np.log(10)  # near-IID at large alpha
    assert skews[0] < 0.5 * np.log(10)


def test_different_seeds_differ() -> None:
    labels = np.repeat(np.arange(10), 100)

    a = dirichlet_partition(labels, 5, 0.5, seed=0)
    b = dirichlet_partition(labels, 5, 0.5, seed=1)

    assert any(not np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_repair_when_every_draw_fails() -> None:
    # One class, alpha tiny: nearly every draw gives all samples to one client, so the repair has to act.
    labels = np.zeros(100, dtype=np.int64)

    parts = dirichlet_partition(labels, 10, 0.001, seed=0, min_size=8, max_attempts=1)

    assert min(len(part) for part in parts) >= 8
    assert sum(len(part) for part in parts) == 100


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"labels": np.zeros((2, 2), int)}, "1-D"),
        ({"labels": np.array([], int)}, "non-empty"),
        ({"labels": np.array([0.5, 1.5])}, "integers"),
        ({"num_clients": 0}, "num_clients"),
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": float("inf")}, "alpha"),
        ({"min_size": 0}, "min_size"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"num_clients": 30, "min_size": 4}, "cannot give 30 clients at least 4"),
    ],
)
def test_rejects_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "labels": np.arange(100) % 3,
        "num_clients": 4,
        "alpha": 0.5,
        "seed": 0,
        "min_size": 1,
    }
    args.update(kwargs)

    with pytest.raises(ValueError, match=message):
        dirichlet_partition(**args)  # type: ignore[arg-type]
