"""Local differential privacy: each device clips and noises its own delta before it leaves.

The Gaussian mechanism applied on the device (the client-side half of DP-FedAvg, as in the local
variants surveyed by Kairouz et al., "Advances and Open Problems in Federated Learning", 2021, sec.
4.4): ``delta <- delta * min(1, C / |delta|_2) + N(0, sigma^2 I)`` with ``sigma = z * C``. Nothing
on the server is trusted: every update a device sends is (epsilon, delta)-DP on its own.

The unit protected is the device's whole local data set, and two data sets are neighbours if they
differ arbitrarily (replace-one at the device level), so one release has L2 sensitivity ``2C`` and
multiplier ``z / 2``. There is no amplification by sampling (the server sees who sends), so after
``r`` releases the device's epsilon is exactly that of ``r`` composed Gaussian mechanisms
(``gaussian.gaussian_epsilon``: standard library, no dp-accounting on the device).

Error feedback: the delta is privatized *before* the update codec, so the codec's residual only
ever holds parts of already-noised deltas. Everything sent, now or in later rounds, is then
post-processing of privatized releases and costs no further privacy. (Privatizing after the codec
would let the residual carry un-noised signal into later rounds.)
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fmfl.durable import atomic_write
from fmfl.privacy.gaussian import gaussian_epsilon

LEDGER_FILE = "local_dp.json"


def privatize(
    delta: npt.ArrayLike, clip: float, sigma: float, rng: np.random.Generator
) -> npt.NDArray[np.float32]:
    """``delta`` clipped to L2 norm ``clip``, plus ``N(0, sigma^2)`` on every coordinate (float32)."""
    if not (math.isfinite(clip) and clip > 0):
        raise ValueError(f"clip must be a positive finite number, got {clip!r}")
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}")
    d = np.array(delta, dtype=np.float64, copy=True).ravel()
    if not bool(np.isfinite(d).all()):
        raise ValueError("delta contains NaN or infinity")
    norm = float(np.linalg.norm(d))
    if norm > clip:
        d *= clip / norm
    if sigma > 0:
        d += rng.normal(0.0, sigma, size=d.shape)
    out: npt.NDArray[np.float32] = d.astype(np.float32)
    return out


@dataclass(frozen=True)
class LocalDp:
    """A device's local-DP settings: clip norm ``C``, noise multiplier ``z`` (sigma = z C), ``delta``."""

    clip: float
    noise_multiplier: float
    delta: float = 1e-5

    def __post_init__(self) -> None:
        for name, value in (("--local-dp-clip", self.clip), ("--local-dp-noise-multiplier", self.noise_multiplier)):
            if isinstance(value, bool) or not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if not 0.0 < self.delta < 1.0:
            raise ValueError(f"--local-dp-delta must be in (0, 1), got {self.delta!r}")

    @property
    def sigma(self) -> float:
        """The noise standard deviation per coordinate, ``z * C``."""
        return self.noise_multiplier * self.clip

    def epsilon(self, releases: int) -> float:
        """The device's epsilon at ``delta`` after ``releases`` privatized updates (sensitivity 2C)."""
        return gaussian_epsilon(self.noise_multiplier / 2.0, releases, self.delta)


class PrivacyLedger:
    """How many privatized updates this device has released, kept in its state folder.

    Counted *before* the update is committed: a crash between the two over-counts (safe), never
    under-counts.
    """

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.path = Path(state_dir) / LEDGER_FILE

    def releases(self) -> int:
        """The privatized updates released so far (0 for a fresh state folder)."""
        try:
            return int(json.loads(self.path.read_text(encoding="utf-8"))["releases"])
        except FileNotFoundError:
            return 0

    def record(self, count: int = 1) -> int:
        """Add ``count`` releases durably; returns the new total."""
        total = self.releases() + count
        # Durable including the rename: a power cut after this returns must not forget the release.
        atomic_write(self.path, json.dumps({"releases": total}).encode())
        return total


def privatize_update(
    delta: npt.ArrayLike, local_dp: LocalDp, ledger: PrivacyLedger
) -> tuple[npt.NDArray[np.float32], dict[str, float]]:
    """The device's step before encoding: record the release, clip and noise, report the epsilon.

    The noise comes from OS entropy (``default_rng()`` with no seed): a device's noise must not be
    reproducible by anyone, the server included.
    """
    releases = ledger.record()
    noisy = privatize(delta, local_dp.clip, local_dp.sigma, np.random.default_rng())
    return noisy, {"local_dp_epsilon": local_dp.epsilon(releases), "local_dp_releases": float(releases)}


def local_dp_from_options(clip: float | None, noise_multiplier: float | None, delta: float) -> LocalDp | None:
    """``LocalDp`` from ``fmfl client --local-dp-*``; None when neither is given; ``FmflError`` naming the flag."""
    from fmfl.errors import FmflError

    if clip is None and noise_multiplier is None:
        return None
    if clip is None or noise_multiplier is None:
        raise FmflError("--local-dp-clip and --local-dp-noise-multiplier go together")
    try:
        return LocalDp(clip, noise_multiplier, delta)
    except ValueError as exc:
        raise FmflError(str(exc)) from exc
