"""FedAvgM: FedAvg with server momentum.

Hsu, Qi, Brown, "Measuring the Effects of Non-Identical Data Distribution for Federated Visual
Classification", arXiv:1909.06335, 2019. With the round's weighted mean delta ``d`` (client minus
global, so the sign is the opposite of the paper's gradient-like ``Δw``):
``v = momentum * v + d``; ``global = global + server_lr * v``. ``momentum = 0`` is FedAvg.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from fmfl.aggregation.rules import _dense_state
from fmfl.aggregation.rules._streaming import MeanStrategy
from fmfl.aggregation.sparse import Float32Array, Float64Array
from fmfl.aggregation.strategy import StateDict, check_unit_interval
from fmfl.aggregation.validation import UpdateLimits


class FedAvgM(MeanStrategy):
    """Sample-weighted averaging with a server-side momentum buffer."""

    name: ClassVar[str] = "fedavgm"

    def __init__(self, *, server_lr: float = 1.0, momentum: float = 0.9, limits: UpdateLimits | None = None):
        super().__init__(server_lr=server_lr, limits=limits)
        self.momentum = check_unit_interval("momentum", momentum)
        self._velocity: Float64Array = _dense_state.EMPTY

    def _check_state_size(self, size: int) -> None:
        self._velocity = _dense_state.ensure(self._velocity, size, 0.0, "velocity")

    def _server_step(self, global32: Float32Array, delta: Float64Array) -> Float64Array:
        self._velocity *= self.momentum
        self._velocity += delta
        out: Float64Array = np.multiply(self._velocity, self.server_lr, out=delta)
        out += global32
        return out

    def _server_state(self) -> StateDict:
        return {"velocity": self._velocity.copy()}

    def _load_server_state(self, state: StateDict) -> None:
        self._velocity = _dense_state.load(state, "velocity")
