"""Epsilon of DP-FedAvg after some rounds, from Google's ``dp-accounting`` (gateway extra).

One round of DP-FedAvg (McMahan, Ramage, Talwar, Zhang, "Learning Differentially Private Recurrent
Language Models", ICLR 2018) is a sampled Gaussian mechanism: each client's delta is clipped to L2
norm ``C``, the clipped deltas are summed, and Gaussian noise of std ``z * C`` is added (both divided
by the same public denominator, which changes nothing). The rounds compose. Two readings of "which
clients took part" are offered, because fmfl's selection matches neither textbook case exactly:

- ``Sampling.POISSON`` (the default; what McMahan et al., TensorFlow Federated and most DP-FL papers
  account): every client joins each round independently with probability ``q``; neighbouring fleets
  differ by adding or removing one client, so the sum's sensitivity is ``C``.
  ``PoissonSampledDpEvent(q, GaussianDpEvent(z))`` under ``ADD_OR_REMOVE_ONE``.
- ``Sampling.FIXED_SIZE``: what fmfl actually does - a uniformly random subset of fixed size
  ``m = q * N`` out of a fleet of known size ``N``. The matching analysis (Wang, Balle,
  Kasiviswanathan, "Subsampled Renyi Differential Privacy and Analytical Moments Accountant",
  AISTATS 2019) is for neighbours that *replace* one client, so the sum's sensitivity is ``2C`` and the
  mechanism's multiplier is ``z / 2``: ``SampledWithoutReplacementDpEvent(N, m, GaussianDpEvent(z/2))``
  under ``REPLACE_ONE``. A larger epsilon for the same run; stricter, and exact about the sampling.

With ``q = 1`` (every client, every round) no sampling is involved and the two differ only by the
neighbour relation. ``Accounting.RDP`` (Mironov 2017, with the improved RDP-to-DP conversion of
Canonne, Kamath, Steinke 2020, as dp-accounting does) is fast and an upper bound; ``Accounting.PLD``
(privacy loss distributions, Koskela et al. 2020 / Doroshenko et al. 2022) is tighter but slower and
supports Poisson sampling only. Neither covers how fmfl really picks the participants among the
selected: the first ``K`` updates to arrive close the round (docs/privacy.md, "Limitations").
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from typing import Any

from fmfl.compat import StrEnum
from fmfl.errors import FmflError


class Sampling(StrEnum):
    """How the accountant models the choice of each round's participants (module docstring)."""

    POISSON = "poisson"
    FIXED_SIZE = "fixed-size"


class Accounting(StrEnum):
    """The ``dp_accounting`` accountant: Renyi DP (an upper bound) or privacy loss distributions (tight)."""

    RDP = "rdp"
    PLD = "pld"


def _check(noise_multiplier: float, sampling_rate: float, rounds: int, delta: float) -> None:
    if isinstance(noise_multiplier, bool) or not (math.isfinite(noise_multiplier) and noise_multiplier > 0):
        raise ValueError(f"noise_multiplier must be a positive finite number, got {noise_multiplier!r}")
    if isinstance(sampling_rate, bool) or not 0.0 < sampling_rate <= 1.0:
        raise ValueError(f"sampling_rate must be in (0, 1], got {sampling_rate!r}")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0:
        raise ValueError(f"rounds must be an integer >= 0, got {rounds!r}")
    if isinstance(delta, bool) or not 0.0 < delta < 1.0:
        raise ValueError(f"delta must be in (0, 1), got {delta!r}")


def dp_event(
    noise_multiplier: float,
    sampling_rate: float,
    rounds: int,
    *,
    sampling: Sampling = Sampling.POISSON,
    fleet_size: int | None = None,
) -> Any:
    """The ``dp_accounting`` event of ``rounds`` DP-FedAvg rounds (see the module docstring)."""
    try:
        import dp_accounting
    except ModuleNotFoundError as exc:
        raise FmflError("privacy accounting needs dp-accounting: pip install 'fmfl[gateway]'") from exc

    if sampling is Sampling.POISSON:
        one: Any = dp_accounting.GaussianDpEvent(noise_multiplier)
        if sampling_rate < 1.0:
            one = dp_accounting.PoissonSampledDpEvent(sampling_rate, one)
        return dp_accounting.SelfComposedDpEvent(one, rounds)
    if fleet_size is None or isinstance(fleet_size, bool) or not isinstance(fleet_size, int) or fleet_size < 1:
        raise ValueError(f"fixed-size sampling needs fleet_size, a positive integer; got {fleet_size!r}")
    sample_size = round(sampling_rate * fleet_size)
    if not 1 <= sample_size <= fleet_size or not math.isclose(sample_size, sampling_rate * fleet_size, abs_tol=1e-6):
        raise ValueError(
            f"fixed-size sampling needs sampling_rate * fleet_size to be a whole number of clients in "
            f"[1, {fleet_size}], got {sampling_rate} * {fleet_size}"
        )
    # Replacing one client moves the clipped sum by up to 2C: the mechanism's multiplier is z / 2.
    one = dp_accounting.GaussianDpEvent(noise_multiplier / 2.0)
    if sample_size < fleet_size:
        one = dp_accounting.SampledWithoutReplacementDpEvent(fleet_size, sample_size, one)
    return dp_accounting.SelfComposedDpEvent(one, rounds)


def epsilon(
    noise_multiplier: float,
    sampling_rate: float,
    rounds: int,
    delta: float,
    *,
    sampling: Sampling | str = Sampling.POISSON,
    fleet_size: int | None = None,
    accounting: Accounting | str = Accounting.RDP,
) -> float:
    """Epsilon at ``delta`` after ``rounds`` rounds of DP-FedAvg with noise multiplier ``z``.

    ``sampling_rate`` is ``q``, the chance that a given client takes part in a round (clients
    invited per round / fleet size). Client-level: one client's whole data is the unit protected.
    May be ``math.inf`` (too little noise for this ``delta``).
    """
    _check(noise_multiplier, sampling_rate, rounds, delta)
    sampling, accounting = Sampling(sampling), Accounting(accounting)
    if rounds == 0:
        return 0.0
    event = dp_event(noise_multiplier, sampling_rate, rounds, sampling=sampling, fleet_size=fleet_size)
    if accounting is Accounting.RDP:
        from dp_accounting.rdp import RdpAccountant

        relation = _relation(sampling)
        acc: Any = RdpAccountant(neighboring_relation=relation)
    else:
        if sampling is not Sampling.POISSON:
            raise ValueError("PLD accounting supports Poisson sampling only; use accounting='rdp'")
        from dp_accounting.pld import PLDAccountant

        acc = PLDAccountant()
    with _quiet_absl():
        acc.compose(event)
        return float(acc.get_epsilon(delta))


@contextlib.contextmanager
def _quiet_absl() -> Iterator[None]:
    """Mute dp-accounting's per-order warnings for one computation.

    For sampling without replacement it warns for every RDP order whose series does not converge and
    leaves that order out; the bound stays valid (it is a minimum over the remaining orders), but a
    gateway would log a handful of lines per round.
    """
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _relation(sampling: Sampling) -> Any:
    from dp_accounting import NeighboringRelation

    if sampling is Sampling.POISSON:
        return NeighboringRelation.ADD_OR_REMOVE_ONE
    return NeighboringRelation.REPLACE_ONE
