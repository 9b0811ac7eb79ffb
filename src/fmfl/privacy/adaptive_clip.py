"""Adaptive clipping: the clip norm follows a quantile of the clients' update norms, privately.

Andrew, Thakkar, McMahan, Ramaswamy, "Differentially Private Learning with Adaptive Clipping",
NeurIPS 2021 (Algorithm 2 and Section 3). Each round every participant reports one bit,
``b_i = 1 if |delta_i| <= C`` (here the server computes it from the delta it holds anyway). The
noised fraction of unclipped updates is

    b~ = (sum_i (b_i - 1/2) + N(0, sigma_b^2)) / m + 1/2

over the fixed expected count ``m``; centring the bits halves the count's sensitivity to 1/2
(the paper's remark after Theorem 1). The clip norm takes a geometric step toward the target
quantile ``gamma``:

    C <- C * exp(-eta_C * (b~ - gamma))

Releasing ``b~`` spends privacy too. The paper splits one overall noise multiplier ``z`` between the
two Gaussian queries so that together they are exactly one Gaussian mechanism with multiplier ``z``:
the update noise uses ``z_delta = (z^-2 - (2 sigma_b)^-2)^(-1/2)``. The accountant then accounts
``z`` alone. This needs ``2 sigma_b > z``; the paper suggests ``sigma_b = m / 20``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def update_noise_multiplier(noise_multiplier: float, count_stddev: float) -> float:
    """``z_delta``: the multiplier left for the update once the clipped count took its share."""
    if not 2.0 * count_stddev > noise_multiplier:
        raise ValueError(
            f"adaptive clipping needs clipped_count_stddev > noise_multiplier / 2 "
            f"(got {count_stddev!r} and {noise_multiplier!r}); raise the count noise or lower the multiplier"
        )
    return float((noise_multiplier**-2 - (2.0 * count_stddev) ** -2) ** -0.5)


@dataclass(frozen=True)
class AdaptiveClip:
    """The quantile tracker's settings; ``step`` is the per-round update of ``C``."""

    target_quantile: float = 0.5
    learning_rate: float = 0.2
    count_stddev: float = 0.5

    def __post_init__(self) -> None:
        if isinstance(self.target_quantile, bool) or not 0.0 < self.target_quantile < 1.0:
            raise ValueError(f"target_quantile must be in (0, 1), got {self.target_quantile!r}")
        if isinstance(self.learning_rate, bool) or not (
            math.isfinite(self.learning_rate) and self.learning_rate > 0
        ):
            raise ValueError(f"clip_learning_rate must be a positive finite number, got {self.learning_rate!r}")
        if isinstance(self.count_stddev, bool) or not (math.isfinite(self.count_stddev) and self.count_stddev > 0):
            raise ValueError(f"clipped_count_stddev must be a positive finite number, got {self.count_stddev!r}")

    def noised_fraction(
        self, unclipped: int, participants: int, expected_clients: float, rng: np.random.Generator
    ) -> float:
        """``b~``: the private estimate of the fraction of updates that were not clipped."""
        centred = unclipped - 0.5 * participants
        return float((centred + rng.normal(0.0, self.count_stddev)) / expected_clients + 0.5)

    def step(self, clip_norm: float, noised_fraction: float) -> float:
        """The next round's clip norm (geometric update; stays positive)."""
        return float(clip_norm * math.exp(-self.learning_rate * (noised_fraction - self.target_quantile)))
