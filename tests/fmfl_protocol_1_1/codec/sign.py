"""1-bit sign quantization with a float32 scale per group.

signSGD: Bernstein et al. 2018, "signSGD: Compressed Optimisation for Non-Convex Problems" (ICML); the
scaled sign ``mean|v| * sign(v)`` with error feedback: Karimireddy et al. 2019, "Error Feedback Fixes SignSGD
and other Gradient Compression Schemes" (ICML). Deterministic: ``scale = float32(mean|v|)``, bit = ``v >= 0``.
Stochastic (unbiased): ``scale = float32(max|v|)``, bit = 1 with probability ``(1 + v / scale) / 2``.
Bits are packed most significant first (``numpy.packbits``); 1 decodes to ``+scale``, 0 to ``-scale``.
"""

from __future__ import annotations

import numpy as np

from fmfl_protocol_1_1.codec.base import Float32Array, FloatArray, ValueCoding
from fmfl_protocol_1_1.codec.groups import CountArray, group_max_abs, group_mean_abs
from fmfl_protocol_1_1.errors import ProtocolError, Reason


def _expand(bits: np.ndarray, scales: Float32Array, counts: CountArray) -> Float32Array:  # type: ignore[type-arg]
    per_value = np.repeat(scales, counts)
    return np.where(bits.astype(np.bool_), per_value, -per_value).astype(np.float32, copy=False)


class SignQuantizer:
    """One bit a value."""

    code = ValueCoding.SIGN
    grouped = True

    def __init__(self, *, stochastic: bool = False) -> None:
        self.stochastic = stochastic

    def encode(
        self, values: FloatArray, counts: CountArray, rng: np.random.Generator
    ) -> tuple[bytes, bytes, Float32Array]:
        if self.stochastic:
            scales = group_max_abs(values, counts).astype(np.float32)
            per_value = np.repeat(scales, counts).astype(np.float64)
            ratio = np.divide(values, per_value, out=np.zeros_like(values), where=per_value > 0)
            bits = rng.random(values.size) < (1.0 + ratio) / 2.0
        else:
            scales = group_mean_abs(values, counts).astype(np.float32)
            bits = values >= 0
        return scales.astype("<f4").tobytes(), np.packbits(bits).tobytes(), _expand(bits, scales, counts)


def sign_value_bytes(nnz: int) -> int:
    return (nnz + 7) // 8


def decode_sign(data: memoryview, nnz: int, scales: Float32Array, counts: CountArray) -> Float32Array:
    """Values of a sign coding, or :class:`ProtocolError` if padding bits are set."""
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
    if bits[nnz:].any():
        raise ProtocolError(Reason.MALFORMED, "sign padding bits are not zero")
    return _expand(bits[:nnz], scales, counts)
