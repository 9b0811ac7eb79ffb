"""Exact (epsilon, delta) of the Gaussian mechanism and of its composition, standard library only.

Balle and Wang, "Improving the Gaussian Mechanism for Differential Privacy: Analytical Calibration
and Optimal Denoising", ICML 2018, Theorem 8: a Gaussian mechanism with noise multiplier ``z``
(noise std / L2 sensitivity) is (epsilon, delta)-DP exactly when
``delta >= Phi(-epsilon z + 1/(2z)) - e^epsilon Phi(-epsilon z - 1/(2z))``.
Composing ``k`` of them is again a Gaussian mechanism, with multiplier ``z / sqrt(k)`` (Dong, Roth,
Su, "Gaussian Differential Privacy", JRSS-B 2022, Corollary 3.3: mu-GDP composes as
``mu = sqrt(k)/z``). So without subsampling this is the tight epsilon, not a bound: the device's
local-DP ledger reports it, and the tests check the ``dp-accounting`` numbers against it.
"""

from __future__ import annotations

import math


def _phi(x: float) -> float:
    """Standard normal CDF; ``erfc`` keeps precision in the far left tail."""
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def gaussian_delta(mu: float, epsilon: float) -> float:
    """The smallest delta for which mu-GDP is (epsilon, delta)-DP (Dong et al. Corollary 2.13)."""
    if mu <= 0:
        return 0.0
    a = _phi(-epsilon / mu + mu / 2.0)
    b = _phi(-epsilon / mu - mu / 2.0)
    # e^eps * b underflows to 0 well before it could overflow for the epsilons searched here.
    return max(0.0, a - math.exp(epsilon) * b) if b > 0 else a


def gaussian_epsilon(noise_multiplier: float, compositions: int, delta: float) -> float:
    """The exact epsilon of ``compositions`` Gaussian mechanisms with ``noise_multiplier`` at ``delta``.

    ``noise_multiplier`` is noise std over the L2 sensitivity of one release. Zero compositions cost 0.
    """
    if not (math.isfinite(noise_multiplier) and noise_multiplier > 0):
        raise ValueError(f"noise_multiplier must be a positive finite number, got {noise_multiplier!r}")
    if isinstance(compositions, bool) or not isinstance(compositions, int) or compositions < 0:
        raise ValueError(f"compositions must be an integer >= 0, got {compositions!r}")
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta must be in (0, 1), got {delta!r}")
    if compositions == 0:
        return 0.0
    mu = math.sqrt(compositions) / noise_multiplier
    if gaussian_delta(mu, 0.0) <= delta:
        return 0.0
    lo, hi = 0.0, 1.0
    while gaussian_delta(mu, hi) > delta:  # delta(eps) decreases in eps: bracket, then bisect
        lo, hi = hi, 2.0 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if gaussian_delta(mu, mid) > delta:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * max(1.0, hi):
            break
    return hi
