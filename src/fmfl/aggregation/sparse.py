"""The sparse vector the aggregator consumes, as a structural type.

The wire format belongs to ``fmfl.protocol`` (its ``SparseUpdate(indices, values, size)``); the
aggregator only needs three attributes, so it states them as a ``typing.Protocol`` and never imports
the codec. Anything with ``indices``, ``values`` and ``size`` can be aggregated: a decoded MQTT
payload, a row replayed from the write-ahead log, or a test fixture.

Semantics: coordinates absent from ``indices`` are zero. For the mean-based rules that is exact;
for the robust rules it means a client that did not send a coordinate votes "no change" there.
"""

from __future__ import annotations

from typing import Protocol, TypeAlias

import numpy as np
import numpy.typing as npt

IndexArray: TypeAlias = npt.NDArray[np.int64]
Float32Array: TypeAlias = npt.NDArray[np.float32]
Float64Array: TypeAlias = npt.NDArray[np.float64]


class SparseVector(Protocol):
    """A vector of length ``size`` with ``values`` at sorted, unique ``indices`` and zeros elsewhere."""

    @property
    def indices(self) -> npt.NDArray[np.integer]: ...

    @property
    def values(self) -> npt.NDArray[np.floating]: ...

    @property
    def size(self) -> int: ...


def densify(indices: IndexArray, values: Float32Array, size: int) -> Float64Array:
    """The dense float64 form of a sparse vector (for references, Krum's winner and tests)."""
    out = np.zeros(size, dtype=np.float64)
    out[indices] = values
    return out
