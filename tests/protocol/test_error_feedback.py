"""Error feedback conserves mass: sum of what was sent + final residual == sum of the inputs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fmfl.protocol import Limits, ProtocolError, UpdateEncoder, decode_update

CHAINS = [
    "topk:0.05+int8+ef",
    "topk:0.05+int4+ef",
    "topk:0.05+sign+ef",
    "topk:3+int8:sr+ef",
    "randk:0.1+int8+ef",
    "fp16+ef",
    "int4:per_tensor+ef",
    "topk:0.1,per_tensor+sign:sr+ef",
    "topk:0.01+int8+ef+zstd",
]


def _run(chain: str, inputs: list[np.ndarray], size: int) -> tuple[np.ndarray, UpdateEncoder]:
    encoder = UpdateEncoder(chain, size, [size - size // 3, size // 3], seed=11)
    limits = Limits.for_vector_size(size)
    sent = np.zeros(size, dtype=np.float64)
    for delta in inputs:
        update = decode_update(encoder.encode(delta), size, limits)  # what the gateway really received
        sent[update.indices] += update.values
    return sent, encoder


@pytest.mark.parametrize("chain", ["topk:0.05+ef", "topk:2,per_tensor+ef", "randk:0.1+ef"])
def test_mass_is_conserved_bit_exactly_for_dyadic_updates(chain: str) -> None:
    # Small integers / 8 are exact in float32 and every sum stays exact in float64.
    rng = np.random.default_rng(0)
    inputs = [(rng.integers(-1000, 1000, 300) / 8).astype(np.float32) for _ in range(25)]
    sent, encoder = _run(chain, inputs, 300)
    total = np.sum(np.stack(inputs).astype(np.float64), axis=0)
    np.testing.assert_array_equal(sent + encoder.residual, total)


@pytest.mark.parametrize("chain", CHAINS)
@given(
    seed=st.integers(0, 2**32 - 1), rounds=st.integers(1, 12), scale=st.sampled_from([1e-6, 1e-2, 1.0, 1e4])
)
@settings(max_examples=15)
def test_mass_is_conserved_to_float64_rounding(chain: str, seed: int, rounds: int, scale: float) -> None:
    rng = np.random.default_rng(seed)
    inputs = [(rng.standard_t(3, 200) * scale).astype(np.float32) for _ in range(rounds)]
    sent, encoder = _run(chain, inputs, 200)
    total = np.sum(np.stack(inputs).astype(np.float64), axis=0)
    magnitude = max(1.0, float(np.abs(np.stack(inputs)).sum(axis=0).max())) * scale
    # Each round adds at most two float64 roundings per coordinate.
    tolerance = 4 * rounds * np.finfo(np.float64).eps * magnitude
    assert np.max(np.abs(sent + encoder.residual - total)) <= tolerance


def test_without_ef_the_residual_stays_zero() -> None:
    encoder = UpdateEncoder("topk:1", 4)
    encoder.encode(np.array([1, 2, 3, 4], dtype=np.float32))
    assert not encoder.residual.any()


def test_residual_is_added_to_the_next_update() -> None:
    encoder = UpdateEncoder("topk:1+ef", 3)
    first = encoder.encode_sparse(np.array([3.0, 2.0, 0.0], dtype=np.float32))[1]
    second = encoder.encode_sparse(np.array([0.0, 0.5, 0.0], dtype=np.float32))[1]
    assert first.indices.tolist() == [0]
    assert second.indices.tolist() == [1]
    assert second.values.tolist() == [2.5]
    assert encoder.residual.tolist() == [0.0, 0.0, 0.0]


def test_residual_survives_a_restart(tmp_path: Path) -> None:
    # Prepare: two encoders, one restarted from the saved residual midway.
    rng = np.random.default_rng(4)
    inputs = [rng.normal(size=500).astype(np.float32) for _ in range(4)]
    steady = UpdateEncoder("topk:0.02+int8+ef", 500, seed=1)
    restarted = UpdateEncoder("topk:0.02+int8+ef", 500, seed=1)
    for delta in inputs[:2]:
        steady.encode(delta)
        restarted.encode(delta)
    path = tmp_path / "residual.npy"
    # Execute
    restarted.save_residual(path)
    fresh = UpdateEncoder("topk:0.02+int8+ef", 500, seed=1)
    fresh.load_residual(path)
    # Assert
    np.testing.assert_array_equal(fresh.residual, steady.residual)
    assert steady.encode(inputs[2]) == fresh.encode(inputs[2])
    assert not (tmp_path / "residual.npy.tmp").exists()


def test_loading_a_residual_of_another_shape_is_refused_and_keeps_the_old_one(tmp_path: Path) -> None:
    path = tmp_path / "residual.npy"
    np.save(path, np.ones(7))
    encoder = UpdateEncoder("topk:1+ef", 5)
    encoder.encode(np.arange(5, dtype=np.float32))
    before = encoder.residual.copy()
    with pytest.raises(ProtocolError) as caught:
        encoder.load_residual(path)
    assert caught.value.reason == "residual_mismatch"
    np.testing.assert_array_equal(encoder.residual, before)


@pytest.mark.parametrize(
    ("content", "reason"), [(b"not an npy file", "residual_mismatch"), (None, "non_finite")]
)
def test_corrupt_residual_files_are_refused(tmp_path: Path, content: bytes | None, reason: str) -> None:
    path = tmp_path / "residual.npy"
    if content is None:
        np.save(path, np.array([1.0, math.nan, 0.0]))
    else:
        path.write_bytes(content)
    with pytest.raises(ProtocolError) as caught:
        UpdateEncoder("topk:1+ef", 3).load_residual(path)
    assert caught.value.reason == reason


def test_non_finite_updates_are_refused_before_touching_the_residual() -> None:
    encoder = UpdateEncoder("topk:1+ef", 3)
    encoder.encode(np.array([1.0, 2.0, 3.0], dtype=np.float32))
    before = encoder.residual.copy()
    with pytest.raises(ProtocolError) as caught:
        encoder.encode(np.array([1.0, np.inf, 0.0], dtype=np.float32))
    assert caught.value.reason == "non_finite"
    np.testing.assert_array_equal(encoder.residual, before)


def test_encoder_argument_checks() -> None:
    with pytest.raises(ValueError, match="tensor_sizes"):
        UpdateEncoder("int8:per_tensor", 10)
    with pytest.raises(ValueError, match="sum to size"):
        UpdateEncoder("dense", 10, [3, 3])
    with pytest.raises(ValueError, match="size must be"):
        UpdateEncoder("dense", 0)
    with pytest.raises(ValueError, match="shape"):
        UpdateEncoder("dense", 3).encode(np.zeros(4, dtype=np.float32))


def test_a_residual_restored_from_memory_continues_like_the_encoder_it_came_from() -> None:
    rng = np.random.default_rng(6)
    inputs = [rng.normal(size=300).astype(np.float32) for _ in range(3)]
    steady = UpdateEncoder("topk:0.05+int8+ef", 300, seed=2)
    for delta in inputs[:2]:
        steady.encode(delta)
    fresh = UpdateEncoder("topk:0.05+int8+ef", 300, seed=2)
    fresh.restore_residual(np.asarray(steady.residual))
    np.testing.assert_array_equal(fresh.residual, steady.residual)
    # top-k + int8 draws nothing at random: the next payload depends only on the delta and the residual
    assert fresh.encode(inputs[2]) == steady.encode(inputs[2])


@pytest.mark.parametrize(("residual", "reason"), [(np.ones(7), "residual_mismatch"),
                                                  (np.ones(5, dtype=np.int64), "residual_mismatch"),
                                                  (np.array([1.0, math.nan, 0, 0, 0]), "non_finite")])
def test_restoring_a_bad_residual_is_refused_and_keeps_the_old_one(residual: np.ndarray, reason: str) -> None:
    encoder = UpdateEncoder("topk:1+ef", 5)
    encoder.encode(np.arange(5, dtype=np.float32))
    before = encoder.residual.copy()
    with pytest.raises(ProtocolError) as caught:
        encoder.restore_residual(residual)
    assert caught.value.reason == reason
    np.testing.assert_array_equal(encoder.residual, before)
