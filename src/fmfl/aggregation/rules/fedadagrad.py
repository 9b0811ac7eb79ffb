"""FedAdagrad: Adagrad as the server optimizer over client deltas.

Reddi et al., "Adaptive Federated Optimization", ICLR 2021, Algorithm 2 (FedAdagrad):
``v = v + Δ²``. See ``fedopt`` for the shared step (β1 momentum included, as in the paper).
"""

from __future__ import annotations

from typing import ClassVar

from fmfl.aggregation.rules.fedopt import FedOpt
from fmfl.aggregation.sparse import Float64Array


class FedAdagrad(FedOpt):
    """Server Adagrad."""

    name: ClassVar[str] = "fedadagrad"

    def _second_moment(self, v: Float64Array, delta_sq: Float64Array) -> Float64Array:
        out: Float64Array = v + delta_sq
        return out
