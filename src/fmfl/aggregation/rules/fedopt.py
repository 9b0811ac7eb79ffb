"""Shared core of the adaptive server optimizers (FedAdam, FedYogi, FedAdagrad).

Reddi, Charles, Zaheer, Garrett, Rush, Konečný, Kumar, McMahan, "Adaptive Federated Optimization",
ICLR 2021, Algorithm 2. With the round's weighted mean delta ``Δ``:
``m = β1 m + (1 - β1) Δ``; ``v`` updated by the variant; ``global = global + η m / (sqrt(v) + τ)``.
As in the paper there is no bias correction, ``m`` starts at 0 and ``v`` at ``τ²`` (the paper asks
``v_{-1} ≥ τ²``). ``η`` is ``server_lr``. Defaults follow common practice (β1 0.9, β2 0.99, τ 1e-3,
one of the paper's grid values; η 0.1). Note Flower's FedAdam adds Adam's bias correction; this
module does not, to stay the paper's algorithm.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np

from fmfl.aggregation.rules import _dense_state
from fmfl.aggregation.rules._streaming import MeanStrategy
from fmfl.aggregation.sparse import Float32Array, Float64Array
from fmfl.aggregation.state_file import CorruptState
from fmfl.aggregation.strategy import StateDict, check_positive, check_unit_interval
from fmfl.aggregation.validation import UpdateLimits


class FedOpt(MeanStrategy):
    """Adaptive server step over the streamed weighted mean; subclasses define the ``v`` update."""

    def __init__(
        self,
        *,
        server_lr: float = 0.1,
        beta1: float = 0.9,
        tau: float = 1e-3,
        limits: UpdateLimits | None = None,
    ) -> None:
        super().__init__(server_lr=server_lr, limits=limits)
        self.beta1 = check_unit_interval("beta1", beta1)
        self.tau = check_positive("tau", tau)
        self._m: Float64Array = _dense_state.EMPTY
        self._v: Float64Array = _dense_state.EMPTY

    @abstractmethod
    def _second_moment(self, v: Float64Array, delta_sq: Float64Array) -> Float64Array:
        """The new ``v`` from the old one and ``Δ²``."""

    def _check_state_size(self, size: int) -> None:
        self._m = _dense_state.ensure(self._m, size, 0.0, "m")
        self._v = _dense_state.ensure(self._v, size, self.tau**2, "v")

    def _server_step(self, global32: Float32Array, delta: Float64Array) -> Float64Array:
        self._m = self.beta1 * self._m + (1.0 - self.beta1) * delta
        self._v = self._second_moment(self._v, np.square(delta))
        out: Float64Array = global32 + self.server_lr * self._m / (np.sqrt(self._v) + self.tau)
        return out

    def _server_state(self) -> StateDict:
        return {"m": self._m.copy(), "v": self._v.copy()}

    def _load_server_state(self, state: StateDict) -> None:
        m, v = _dense_state.load(state, "m"), _dense_state.load(state, "v")
        if m.shape != v.shape or bool((v < 0).any()):
            raise CorruptState("server state 'm' and 'v' must match in size and v be >= 0")
        self._m, self._v = m, v
