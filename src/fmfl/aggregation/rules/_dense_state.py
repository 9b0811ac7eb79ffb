"""Dense float64 server-state vectors (momentum, moments) that are created lazily and size-checked."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fmfl.aggregation.sparse import Float64Array
from fmfl.aggregation.state_file import CorruptState

# The state_dict form of "not created yet": the model size is unknown until the first round.
EMPTY = np.zeros(0, dtype=np.float64)


def ensure(vec: Float64Array, size: int, fill: float, name: str) -> Float64Array:
    """``vec`` if it matches ``size``; a fresh ``fill`` vector if not created yet; else raise."""
    if vec.shape[0] == 0:
        return np.full(size, fill, dtype=np.float64)
    if vec.shape[0] != size:
        raise CorruptState(f"server state {name!r} has size {vec.shape[0]}, the model has {size}")
    return vec


def load(state: dict[str, npt.NDArray[np.generic]], name: str) -> Float64Array:
    arr = np.asarray(state[name])
    if arr.ndim != 1 or arr.dtype != np.float64 or not bool(np.isfinite(arr).all()):
        raise CorruptState(f"server state {name!r} must be a finite 1-D float64 array")
    out: Float64Array = arr.copy()
    return out
