"""FedYogi: Yogi as the server optimizer over client deltas.

Reddi et al., "Adaptive Federated Optimization", ICLR 2021, Algorithm 2 (FedYogi):
``v = v - (1 - β2) Δ² sign(v - Δ²)``, which grows ``v`` additively rather than multiplicatively
(Zaheer et al., NeurIPS 2018). See ``fedopt`` for the shared step.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from fmfl.aggregation.rules.fedopt import FedOpt
from fmfl.aggregation.sparse import Float64Array
from fmfl.aggregation.strategy import check_unit_interval
from fmfl.aggregation.validation import UpdateLimits


class FedYogi(FedOpt):
    """Server Yogi."""

    name: ClassVar[str] = "fedyogi"

    def __init__(
        self,
        *,
        server_lr: float = 0.1,
        beta1: float = 0.9,
        beta2: float = 0.99,
        tau: float = 1e-3,
        limits: UpdateLimits | None = None,
    ) -> None:
        super().__init__(server_lr=server_lr, beta1=beta1, tau=tau, limits=limits)
        self.beta2 = check_unit_interval("beta2", beta2)

    def _second_moment(self, v: Float64Array, delta_sq: Float64Array) -> Float64Array:
        out: Float64Array = v - (1.0 - self.beta2) * delta_sq * np.sign(v - delta_sq)
        return out
