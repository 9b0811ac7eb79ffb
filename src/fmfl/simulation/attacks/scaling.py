"""Update scaling ("boosting"): each malicious client multiplies its honest update by a factor.

Bhagoji, Chakraborty, Mittal, Calo 2019, "Analyzing Federated Learning through an Adversarial Lens", ICML
(explicit boosting of the malicious update by the number of clients), and Bagdasaryan et al. 2020, "How To
Backdoor Federated Learning", AISTATS (model replacement by scaling). Here the scaled update is the honest
one, so the attack tests how far one large update drags a mean; an L2 norm bound is the textbook defence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np

from fmfl.simulation.attacks.base import Attack, Float32Array


class Scaling(Attack):
    """Send ``factor * delta`` (default 10)."""

    name: ClassVar[str] = "scaling"

    def __init__(self, factor: float = 10.0) -> None:
        if isinstance(factor, bool) or not isinstance(factor, int | float) or not math.isfinite(factor):
            raise ValueError(f"factor must be a finite number, got {factor!r}")
        self.factor = float(factor)

    def craft(self, honest: Mapping[str, Float32Array], malicious: Sequence[str]) -> dict[str, Float32Array]:
        return {c: (honest[c].astype(np.float64) * self.factor).astype(np.float32) for c in malicious}

    def describe(self) -> str:
        return f"scaling x{self.factor:g}"
