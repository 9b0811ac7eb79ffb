"""Dense value coding: IEEE 754 binary32 (lossless) or binary16 (half precision).

fp16 transport of updates: Micikevicius et al. 2018, "Mixed Precision Training" (dynamic range of binary16).
Values beyond the binary16 range (|v| > 65504) are clipped; with error feedback the excess is sent later.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fmfl_protocol_1_1.codec.base import Float32Array, FloatArray, ValueCoding

_F32_MAX = float(np.finfo(np.float32).max)
_F16_MAX = float(np.finfo(np.float16).max)


class Float32Coder:
    """4 bytes a value."""

    code = ValueCoding.FP32
    grouped = False

    def encode(
        self, values: FloatArray, counts: npt.NDArray[np.int64], rng: np.random.Generator
    ) -> tuple[bytes, bytes, Float32Array]:
        sent = np.clip(values, -_F32_MAX, _F32_MAX).astype("<f4")
        return b"", sent.tobytes(), sent.astype(np.float32, copy=False)


class Float16Coder:
    """2 bytes a value, clipped to +-65504."""

    code = ValueCoding.FP16
    grouped = False

    def encode(
        self, values: FloatArray, counts: npt.NDArray[np.int64], rng: np.random.Generator
    ) -> tuple[bytes, bytes, Float32Array]:
        half = np.clip(values, -_F16_MAX, _F16_MAX).astype("<f2")
        return b"", half.tobytes(), half.astype(np.float32)


def decode_dense(code: int, data: memoryview, nnz: int) -> Float32Array:
    """Values of a dense coding (``data`` already has the right length)."""
    dtype = "<f4" if code == ValueCoding.FP32 else "<f2"
    return np.frombuffer(data, dtype=dtype, count=nnz).astype(np.float32)


def dense_value_bytes(code: int, nnz: int) -> int:
    return (4 if code == ValueCoding.FP32 else 2) * nnz
