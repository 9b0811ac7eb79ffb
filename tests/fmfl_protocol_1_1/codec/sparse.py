"""A decoded update: sorted unique indices and their float32 values in a vector of known size."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, eq=False)
class SparseUpdate:
    """``values[j]`` is the update of coordinate ``indices[j]``; every other coordinate is zero.

    ``indices`` is int64, strictly increasing, below ``size``; ``values`` is float32 and finite. Arrays from
    :func:`~fmfl_protocol_1_1.decode_update` are read-only.
    """

    indices: npt.NDArray[np.int64]
    values: npt.NDArray[np.float32]
    size: int

    @property
    def nnz(self) -> int:
        """How many coordinates the update carries."""
        return int(self.indices.size)

    def to_dense(self) -> npt.NDArray[np.float32]:
        """The update as a dense float32 vector of ``size``."""
        dense = np.zeros(self.size, dtype=np.float32)
        dense[self.indices] = self.values
        return dense

    def add_to(self, accumulator: npt.NDArray[np.floating], weight: float = 1.0) -> None:
        """``accumulator[indices] += weight * values`` in O(nnz) (indices are unique, so no ``np.add.at``)."""
        if accumulator.shape != (self.size,):
            raise ValueError(f"accumulator shape {accumulator.shape} != ({self.size},)")
        if weight == 1.0:
            accumulator[self.indices] += self.values
        else:
            accumulator[self.indices] += weight * self.values.astype(accumulator.dtype)
