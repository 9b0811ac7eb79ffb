"""Local DP on the device: the clip-and-noise step, its epsilon, and the release ledger."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fmfl.errors import FmflError
from fmfl.privacy.accountant import epsilon
from fmfl.privacy.local import LocalDp, PrivacyLedger, local_dp_from_options, privatize, privatize_update


@settings(max_examples=60)
@given(
    size=st.integers(1, 300),
    scale=st.floats(1e-4, 1e3),
    clip=st.floats(1e-3, 1e2),
    seed=st.integers(0, 2**32 - 1),
)
def test_without_noise_the_output_is_the_clipped_delta(size: int, scale: float, clip: float, seed: int) -> None:
    delta = (np.random.default_rng(seed).standard_normal(size) * scale).astype(np.float32)
    out = privatize(delta, clip, 0.0, np.random.default_rng(0))
    norm = float(np.linalg.norm(delta.astype(np.float64)))
    assert np.linalg.norm(out.astype(np.float64)) <= clip * (1 + 1e-6)
    if norm <= clip:
        assert np.array_equal(out, delta)  # unclipped deltas pass bit for bit
    else:
        # same direction: a positive multiple of the input
        np.testing.assert_allclose(out, delta * (clip / norm), rtol=1e-5, atol=1e-12 * clip)


def test_noise_has_the_stated_standard_deviation_and_is_fresh() -> None:
    delta = np.full(100_000, 1e-6, np.float32)  # norm 3e-4, below the clip
    rng = np.random.default_rng(123)
    a = privatize(delta, 1.0, 0.05, rng).astype(np.float64) - delta
    b = privatize(delta, 1.0, 0.05, rng).astype(np.float64) - delta
    assert a.std() == pytest.approx(0.05, rel=0.01)
    assert abs(a.mean()) < 5 * 0.05 / np.sqrt(a.size)
    assert not np.array_equal(a, b)


def test_privatize_refuses_bad_input() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="clip must be a positive finite number"):
        privatize(np.ones(3), 0.0, 1.0, rng)
    with pytest.raises(ValueError, match="sigma must be a finite number >= 0"):
        privatize(np.ones(3), 1.0, -1.0, rng)
    with pytest.raises(ValueError, match="NaN or infinity"):
        privatize(np.array([1.0, np.nan]), 1.0, 1.0, rng)


def test_local_epsilon_is_the_replace_one_gaussian_composition() -> None:
    # One release: sensitivity 2C, noise zC -> the Gaussian mechanism with multiplier z / 2, which
    # dp-accounting's PLD accountant (q = 1) computes independently of our closed form.
    dp = LocalDp(clip=0.1, noise_multiplier=4.0, delta=1e-5)
    for releases in (1, 5, 20):
        assert dp.epsilon(releases) == pytest.approx(epsilon(2.0, 1.0, releases, 1e-5, accounting="pld"), rel=2e-3)
    assert dp.epsilon(0) == 0.0
    assert dp.epsilon(1) < dp.epsilon(2) < dp.epsilon(10)
    assert dp.sigma == pytest.approx(0.4)


def test_privatize_update_counts_releases_in_the_ledger(tmp_path: Path) -> None:
    dp = LocalDp(clip=1.0, noise_multiplier=2.0)
    ledger = PrivacyLedger(tmp_path)
    _, m1 = privatize_update(np.ones(10, np.float32), dp, ledger)
    _, m2 = privatize_update(np.ones(10, np.float32), dp, PrivacyLedger(tmp_path))  # reopened: survives restarts
    assert (m1["local_dp_releases"], m2["local_dp_releases"]) == (1.0, 2.0)
    assert m1["local_dp_epsilon"] == dp.epsilon(1) < m2["local_dp_epsilon"] == dp.epsilon(2)
    assert json.loads((tmp_path / "local_dp.json").read_text()) == {"releases": 2}


@pytest.mark.parametrize(
    ("clip", "z", "delta", "message"),
    [
        (1.0, None, 1e-5, "--local-dp-clip and --local-dp-noise-multiplier go together"),
        (None, 1.0, 1e-5, "--local-dp-clip and --local-dp-noise-multiplier go together"),
        (0.0, 1.0, 1e-5, "--local-dp-clip must be a positive finite number"),
        (1.0, float("inf"), 1e-5, "--local-dp-noise-multiplier must be a positive finite number"),
        (1.0, 1.0, 0.0, r"--local-dp-delta must be in \(0, 1\)"),
    ],
)
def test_bad_local_dp_options_are_refused_by_name(
    clip: float | None, z: float | None, delta: float, message: str
) -> None:
    with pytest.raises(FmflError, match=message):
        local_dp_from_options(clip, z, delta)


def test_no_local_dp_options_means_none() -> None:
    assert local_dp_from_options(None, None, 1e-5) is None
