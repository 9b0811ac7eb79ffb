"""A Little Is Enough (ALIE).

Baruch, Baruch, Goldberg 2019, "A Little Is Enough: Circumventing Defenses For Distributed Learning",
NeurIPS. The ``m`` colluding malicious clients of ``n`` estimate the coordinate-wise mean ``mu`` and standard
deviation ``sigma`` of the benign updates and all send ``mu - z_max * sigma``. ``z_max`` is the largest shift
that still leaves the crafted update inside the majority a robust rule trusts: with
``s = floor(n / 2 + 1) - m`` benign clients needed to join the attackers for a majority,
``z_max = Phi^-1((n - s) / n)`` (Phi the standard normal CDF; paper section 4, Algorithm 3). For n = 10,
m = 2: s = 4 and z_max = Phi^-1(0.6) = 0.2533.

As in the paper's strongest setting the attackers are omniscient: they use every benign client's update of
the round (not only their own), and the standard deviation is the population one (ddof = 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import ClassVar

import numpy as np

from fmfl.simulation.attacks.base import Attack, Float32Array, benign_stack


def alie_z_max(num_clients: int, num_malicious: int) -> float:
    """The paper's ``z_max`` for ``n`` clients of which ``m`` are malicious (1 <= m < n)."""
    n, m = num_clients, num_malicious
    if not (isinstance(n, int) and isinstance(m, int)) or not 1 <= m < n:
        raise ValueError(f"need integers 1 <= num_malicious < num_clients, got n={n!r}, m={m!r}")
    s = math.floor(n / 2 + 1) - m
    p = (n - s) / n
    if not 0.0 < p < 1.0:
        # s <= 0: the attackers are a majority already; the paper's formula has no finite answer.
        raise ValueError(f"with n={n} and m={m} the attackers need no benign supporters (s={s}); z_max undefined")
    return NormalDist().inv_cdf(p)


class ALittleIsEnough(Attack):
    """All malicious clients send ``mean - z * std`` of the benign updates (coordinate-wise)."""

    name: ClassVar[str] = "alie"

    def __init__(self, z: float | None = None) -> None:
        if z is not None and (isinstance(z, bool) or not isinstance(z, int | float) or not math.isfinite(z)):
            raise ValueError(f"z must be a finite number or None (the paper's z_max), got {z!r}")
        self.z = None if z is None else float(z)
        self.last_z: float | None = None

    def craft(self, honest: Mapping[str, Float32Array], malicious: Sequence[str]) -> dict[str, Float32Array]:
        if not malicious:
            return {}
        z = self.z if self.z is not None else alie_z_max(len(honest), len(malicious))
        self.last_z = z
        benign = benign_stack(honest, malicious)
        crafted = (benign.mean(axis=0) - z * benign.std(axis=0)).astype(np.float32)
        return {c: crafted.copy() for c in malicious}

    def describe(self) -> str:
        return "ALIE (z_max)" if self.z is None else f"ALIE (z={self.z:g})"
