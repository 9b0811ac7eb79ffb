"""The DP-FedAvg accountant against closed forms and its own monotonicity."""

from __future__ import annotations

import itertools
import math

import pytest

from fmfl.privacy.accountant import epsilon
from fmfl.privacy.gaussian import gaussian_delta, gaussian_epsilon


def test_closed_form_gaussian_matches_a_hand_computed_value() -> None:
    # 1-GDP at epsilon 1: Phi(-0.5) - e * Phi(-1.5) = 0.30854 - 2.71828 * 0.06681 = 0.1269 (normal-table
    # values), independent of the erfc-based code; and the bisection inverts it.
    assert gaussian_delta(1.0, 1.0) == pytest.approx(0.1269, abs=2e-4)
    assert gaussian_delta(1.0, gaussian_epsilon(1.0, 1, 0.1269)) == pytest.approx(0.1269, rel=1e-6)


@pytest.mark.parametrize(("z", "rounds"), [(0.5, 40), (1.0, 200), (2.0, 200), (4.0, 10)])
def test_full_participation_rdp_bounds_the_exact_gaussian_composition(z: float, rounds: int) -> None:
    # q = 1: no sampling, so T rounds are exactly one Gaussian mechanism with multiplier z / sqrt(T).
    exact = gaussian_epsilon(z, rounds, 1e-5)
    assert gaussian_epsilon(z / math.sqrt(rounds), 1, 1e-5) == pytest.approx(exact, rel=1e-9)
    rdp = epsilon(z, 1.0, rounds, 1e-5)
    assert exact <= rdp <= 1.1 * exact  # RDP is an upper bound, a few percent loose


@pytest.mark.parametrize(("z", "rounds"), [(4.0, 10), (3.0, 3)])
def test_pld_accounting_is_tight_on_the_exact_composition(z: float, rounds: int) -> None:
    # (Kept to small epsilons: the PLD accountant takes seconds where epsilon is in the tens.)
    assert epsilon(z, 1.0, rounds, 1e-5, accounting="pld") == pytest.approx(gaussian_epsilon(z, rounds, 1e-5), rel=2e-3)


def test_epsilon_grows_with_rounds_and_falls_with_noise() -> None:
    by_rounds = [epsilon(1.0, 0.05, r, 1e-5) for r in (0, 1, 10, 100, 1000)]
    assert by_rounds[0] == 0.0
    assert all(a < b for a, b in itertools.pairwise(by_rounds))
    by_noise = [epsilon(z, 0.05, 100, 1e-5) for z in (0.7, 1.0, 2.0, 5.0)]
    assert all(a > b for a, b in itertools.pairwise(by_noise))


def test_sampling_amplifies_privacy() -> None:
    full = epsilon(1.0, 1.0, 100, 1e-5)
    sampled = epsilon(1.0, 0.01, 100, 1e-5)
    assert sampled < full / 10
    # Tighter than composing the unsampled rounds, looser for larger q.
    assert epsilon(1.0, 0.01, 100, 1e-5) < epsilon(1.0, 0.1, 100, 1e-5)


def test_fixed_size_sampling_is_the_replace_one_bound() -> None:
    # q = 1, replace-one: the sum's sensitivity is 2C, the same as multiplier z / 2 under add/remove.
    assert epsilon(2.0, 1.0, 50, 1e-5, sampling="fixed-size", fleet_size=10) == pytest.approx(
        epsilon(1.0, 1.0, 50, 1e-5), rel=1e-9
    )
    fixed = epsilon(1.0, 0.1, 100, 1e-5, sampling="fixed-size", fleet_size=100)
    assert epsilon(1.0, 0.1, 100, 1e-5) < fixed < epsilon(1.0, 1.0, 100, 1e-5, sampling="fixed-size", fleet_size=100)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((0.0, 0.1, 1, 1e-5), {}, "noise_multiplier must be a positive finite number"),
        ((1.0, 0.0, 1, 1e-5), {}, r"sampling_rate must be in \(0, 1\]"),
        ((1.0, 0.1, -1, 1e-5), {}, "rounds must be an integer >= 0"),
        ((1.0, 0.1, 1, 0.0), {}, r"delta must be in \(0, 1\)"),
        ((1.0, 0.1, 1, 1e-5), {"sampling": "fixed-size"}, "fixed-size sampling needs fleet_size"),
        ((1.0, 0.1, 1, 1e-5), {"sampling": "fixed-size", "fleet_size": 15}, "whole number of clients"),
        ((1.0, 0.1, 1, 1e-5), {"sampling": "fixed-size", "fleet_size": 10, "accounting": "pld"},
         "PLD accounting supports Poisson sampling only"),
        ((1.0, 0.1, 1, 1e-5), {"sampling": "shuffled"}, "'shuffled' is not a valid Sampling"),
    ],
)  # fmt: skip
def test_bad_arguments_are_refused(args: tuple, kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=message):
        epsilon(*args, **kwargs)
