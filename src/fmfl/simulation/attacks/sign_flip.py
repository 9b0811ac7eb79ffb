"""Sign flipping: each malicious client sends the negation of its honest update.

A standard model-poisoning baseline, e.g. Damaskinos et al. 2018, "Asynchronous Byzantine Machine Learning
(the case of SGD)", ICML, and Allen-Zhu et al. 2021, "Byzantine-Resilient Non-Convex Stochastic Gradient
Descent", ICLR ("sign flipping attack"). Its norm equals the honest one, so a norm bound cannot see it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np

from fmfl.simulation.attacks.base import Attack, Float32Array


class SignFlip(Attack):
    """Send ``-delta`` instead of ``delta``."""

    name: ClassVar[str] = "sign-flip"

    def craft(self, honest: Mapping[str, Float32Array], malicious: Sequence[str]) -> dict[str, Float32Array]:
        return {c: np.negative(honest[c]).astype(np.float32) for c in malicious}
