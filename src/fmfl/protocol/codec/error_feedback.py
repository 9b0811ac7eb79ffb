"""Error feedback: keep what compression did not send and add it to the next update.

1-bit SGD with error feedback: Seide et al. 2014, "1-Bit Stochastic Gradient Descent and its Application to
Data-Parallel Distributed Training of Speech DNNs" (Interspeech); analysis: Karimireddy et al. 2019, "Error
Feedback Fixes SignSGD and other Gradient Compression Schemes" (ICML); Stich et al. 2018 ("memory").

Each round ``p = delta + e``; the encoder sends ``s = C(p)`` and keeps ``e' = p - s``. So over T rounds
``sum(s_t) + e_T = sum(delta_t)``: nothing is lost, only delayed. The residual is kept in float64 so that the
identity holds to float64 rounding (bit-exactly when the values involved are dyadic, e.g. top-k + fp32 on
small integers); the sent values are the float32 values the decoder reconstructs.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fmfl.durable import atomic_write
from fmfl.protocol.codec.base import Float32Array, FloatArray, IndexArray
from fmfl.protocol.errors import ProtocolError, Reason


class ErrorFeedback:
    """The residual of one encoder: ``size`` float64 values, zero at the start."""

    def __init__(self, size: int) -> None:
        self._residual = np.zeros(size, dtype=np.float64)

    @property
    def residual(self) -> FloatArray:
        """A read-only view of the current residual."""
        view = self._residual.view()
        view.flags.writeable = False
        return view

    def compensate(self, delta: npt.NDArray[np.floating]) -> FloatArray:
        """``delta + residual`` as a new float64 array."""
        compensated: FloatArray = np.add(delta, self._residual, dtype=np.float64)
        return compensated

    def keep(self, compensated: FloatArray, indices: IndexArray | None, sent: Float32Array) -> None:
        """Make ``compensated - sent`` (sent at ``indices``, or everywhere if None) the new residual.

        Takes ownership of ``compensated`` (it becomes the residual, updated in place).
        """
        if indices is None:
            compensated -= sent
        else:
            compensated[indices] -= sent
        self._residual = compensated

    def reset(self) -> None:
        self._residual = np.zeros_like(self._residual)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the residual as a float64 ``.npy``, atomically and durably (``fmfl.durable``)."""
        buffer = io.BytesIO()
        np.save(buffer, self._residual, allow_pickle=False)
        atomic_write(Path(path), buffer.getvalue())

    def load(self, path: str | os.PathLike[str]) -> None:
        """Read a residual written by :meth:`save`; its shape must match (reason ``residual_mismatch``)."""
        try:
            loaded = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise ProtocolError(Reason.RESIDUAL_MISMATCH, f"cannot read residual {path}: {error}") from None
        self.restore(loaded, what=f"residual {path}")

    def restore(self, residual: npt.NDArray[np.floating], *, what: str = "residual") -> None:
        """Continue from ``residual`` (a device's saved state, or the previous encoder's when the codec changes);
        its shape must match (reason ``residual_mismatch``) and every value be finite."""
        if residual.shape != self._residual.shape or residual.dtype.kind != "f":
            raise ProtocolError(
                Reason.RESIDUAL_MISMATCH,
                f"{what} is {residual.dtype}{residual.shape}, expected float64{self._residual.shape}",
            )
        if not np.isfinite(residual).all():
            raise ProtocolError(Reason.NON_FINITE, f"{what} holds NaN or infinity")
        self._residual = residual.astype(np.float64)
