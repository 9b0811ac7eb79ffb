"""Checks an update must pass before it may touch any aggregator state.

Any MQTT peer can publish anything, so every property the accumulators rely on (indices sorted,
unique and in range; finite values; a sane weight) is established here, once, in O(nnz). The
accumulators then trust their input. A failed check raises ``RejectedUpdate`` whose ``reason`` is a
short stable code (``fmfl.protocol.AckReason``: the Ack's reason and the metric label) and whose message
says what was wrong.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from fmfl.aggregation.sparse import Float32Array, IndexArray, SparseVector
from fmfl.errors import FmflError
from fmfl.protocol.reasons import AckReason

# A sample count above this is a bug or an attack; no edge device trains on a billion samples a round.
DEFAULT_MAX_WEIGHT = 1e9
MAX_CLIENT_ID_LEN = 256


# The validation's name for the one vocabulary of refusals (fmfl.protocol.AckReason): the values are wire
# strings and metric labels.
RejectReason = AckReason


class RejectedUpdate(FmflError):
    """An update refused before it changed anything; ``reason`` says why (the Ack's reason)."""

    def __init__(self, reason: AckReason, message: str) -> None:
        super().__init__(f"update rejected ({reason}): {message}")
        self.reason = AckReason(reason)
        self.detail = message  # what was expected and what came, for the device's Ack


@dataclass(frozen=True)
class UpdateLimits:
    """Bounds on acceptable updates.

    ``max_norm`` bounds the L2 norm of the delta (None: unbounded); it is the cheapest defence
    against a single client dragging a FedAvg mean anywhere. ``max_weight`` bounds the sample count.
    """

    max_norm: float | None = None
    max_weight: float = DEFAULT_MAX_WEIGHT

    def __post_init__(self) -> None:
        if self.max_norm is not None and not (math.isfinite(self.max_norm) and self.max_norm > 0):
            raise ValueError(f"max_norm must be a positive finite number or None, got {self.max_norm!r}")
        if not (math.isfinite(self.max_weight) and self.max_weight > 0):
            raise ValueError(f"max_weight must be a positive finite number, got {self.max_weight!r}")


_NO_LIMITS = UpdateLimits()
# Concrete types first: isinstance against the numbers ABCs is several times slower.
_REAL = (float, int, np.floating, np.integer, numbers.Real)
_INTEGRAL = (int, np.integer, numbers.Integral)


class ValidUpdate(NamedTuple):
    """An update that passed ``validate_update``: int64 indices, float32 values, float weight.

    The arrays may share memory with the caller's; consumers that keep them must copy. (An immutable
    NamedTuple rather than a frozen dataclass: it is built once per update on the ack path, and a
    frozen dataclass costs about a microsecond more there.)
    """

    indices: IndexArray
    values: Float32Array
    size: int
    weight: float
    client_id: str

    @property
    def nnz(self) -> int:
        return int(self.indices.shape[0])


def validate_update(
    update: SparseVector,
    weight: float,
    client_id: str,
    *,
    size: int,
    seen_clients: Collection[str] = (),
    limits: UpdateLimits | None = None,
) -> ValidUpdate:
    """Check one client's sparse delta against the round's vector ``size`` and ``limits``.

    Returns the update in canonical dtypes; raises ``RejectedUpdate`` on the first failed check.
    Costs O(nnz) and never O(size).
    """
    limits = limits or _NO_LIMITS
    cid = _check_client(client_id, seen_clients)
    w = _check_weight(weight, limits.max_weight)
    idx_raw, val_raw = _check_arrays(update, size)
    nnz = int(idx_raw.shape[0])
    # ndarray methods, not np.any/np.all: their Python wrappers cost more than the work itself at
    # the nnz of a sparse update, and this runs once per update on the acknowledgement path.
    if nnz > 1 and (idx_raw[1:] <= idx_raw[:-1]).any():
        raise RejectedUpdate(RejectReason.INDICES, "indices are not strictly increasing (unsorted or duplicate)")
    if nnz and (int(idx_raw[0]) < 0 or int(idx_raw[-1]) >= size):
        raise RejectedUpdate(
            RejectReason.INDICES, f"indices span [{int(idx_raw[0])}, {int(idx_raw[-1])}], outside [0, {size})"
        )
    # Casting after the range check: a uint64 index >= 2**63 would wrap negative in int64.
    indices = np.ascontiguousarray(idx_raw, dtype=np.int64)
    if val_raw.dtype == np.float32:
        values = np.ascontiguousarray(val_raw)
    else:
        with np.errstate(over="ignore"):  # overflow to inf is expected here and refused just below
            values = np.ascontiguousarray(val_raw, dtype=np.float32)
    if not np.isfinite(values).all():
        # float64 values beyond float32 range became inf in the cast and are refused, not clipped.
        raise RejectedUpdate(RejectReason.NON_FINITE, "values contain NaN or infinity (in float32)")
    if limits.max_norm is not None:
        # float64 dot: a float32 one can overflow for vectors whose norm is merely large.
        v64 = values.astype(np.float64)
        norm = math.sqrt(float(np.dot(v64, v64)))
        if norm > limits.max_norm:
            raise RejectedUpdate(RejectReason.NORM, f"L2 norm {norm:.6g} exceeds the bound {limits.max_norm:.6g}")
    return ValidUpdate(indices, values, size, w, cid)


def _check_client(client_id: object, seen_clients: Collection[str]) -> str:
    if not isinstance(client_id, str) or not client_id or len(client_id) > MAX_CLIENT_ID_LEN:
        raise RejectedUpdate(
            RejectReason.INVALID_ID,
            f"client id must be a non-empty string of at most {MAX_CLIENT_ID_LEN} chars",
        )
    if client_id in seen_clients:
        raise RejectedUpdate(RejectReason.DUPLICATE_CLIENT, f"client {client_id!r} already contributed this round")
    return client_id


def _check_weight(weight: object, max_weight: float) -> float:
    # bool is an int subclass; True as a sample count is a caller bug, not a weight of 1.
    if isinstance(weight, bool | np.bool_) or not isinstance(weight, _REAL):
        raise RejectedUpdate(RejectReason.WEIGHT, f"weight must be a real number, got {type(weight).__name__}")
    w = float(weight)
    if not math.isfinite(w) or w <= 0:
        raise RejectedUpdate(RejectReason.WEIGHT, f"weight must be positive and finite, got {w!r}")
    if w > max_weight:
        raise RejectedUpdate(RejectReason.WEIGHT, f"weight {w:.6g} exceeds the bound {max_weight:.6g}")
    return w


def _check_arrays(update: SparseVector, size: int) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    try:
        idx, val, declared = update.indices, update.values, update.size
    except AttributeError as exc:
        raise RejectedUpdate(RejectReason.SHAPE, f"not a sparse vector: {exc}") from exc
    if not isinstance(idx, np.ndarray) or not isinstance(val, np.ndarray):
        raise RejectedUpdate(RejectReason.DTYPE, "indices and values must be numpy arrays")
    if idx.dtype.kind not in "iu":
        raise RejectedUpdate(RejectReason.DTYPE, f"indices must be integers, got {idx.dtype}")
    if val.dtype.kind != "f":
        raise RejectedUpdate(RejectReason.DTYPE, f"values must be floating point, got {val.dtype}")
    if idx.ndim != 1 or val.ndim != 1 or idx.shape != val.shape:
        raise RejectedUpdate(
            RejectReason.SHAPE, f"indices {idx.shape} and values {val.shape} must be 1-D of equal length"
        )
    if isinstance(declared, bool) or not isinstance(declared, _INTEGRAL) or int(declared) != size:
        raise RejectedUpdate(RejectReason.SIZE_MISMATCH, f"vector size {declared!r} != model size {size}")
    if idx.shape[0] > size:
        raise RejectedUpdate(RejectReason.SHAPE, f"{idx.shape[0]} entries exceed the vector size {size}")
    return idx, val
