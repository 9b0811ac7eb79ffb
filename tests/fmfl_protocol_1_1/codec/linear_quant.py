"""Uniform (linear) quantization to int8 or int4 with a float32 scale per group, optionally stochastic.

QSGD: Alistarh et al. 2017, "QSGD: Communication-Efficient SGD via Gradient Quantization and Encoding"
(NeurIPS); stochastic rounding for unbiasedness: Gupta et al. 2015, "Deep Learning with Limited Numerical
Precision". With ``L = 127`` (int8) or ``L = 7`` (int4) levels on each side, a group of values ``v`` gets
``scale = float32(max|v| / L)`` and codes ``q = clip(round(v / scale), -L, L)`` (round half to even, or
``floor(v / scale + u)`` with ``u ~ U[0, 1)`` when stochastic). The decoder computes ``float32(q) * scale`` in
float32, which the encoder reproduces bit for bit to keep its error-feedback residual exact.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fmfl_protocol_1_1.codec.base import Float32Array, FloatArray, ValueCoding
from fmfl_protocol_1_1.codec.groups import CountArray, group_max_abs
from fmfl_protocol_1_1.errors import ProtocolError, Reason


def dequantize(codes: npt.NDArray[np.int8], scales: Float32Array, counts: CountArray) -> Float32Array:
    """``float32(q) * scale`` per value, in float32."""
    return codes.astype(np.float32) * np.repeat(scales, counts)


class LinearQuantizer:
    """int8 (``bits=8``) or int4 (``bits=4``) codes with one scale per group."""

    grouped = True

    def __init__(self, bits: int, *, stochastic: bool = False) -> None:
        if bits not in (4, 8):
            raise ValueError("bits must be 4 or 8")
        self.bits = bits
        self.levels = 127 if bits == 8 else 7
        self.code = ValueCoding.INT8 if bits == 8 else ValueCoding.INT4
        self.stochastic = stochastic

    def encode(
        self, values: FloatArray, counts: CountArray, rng: np.random.Generator
    ) -> tuple[bytes, bytes, Float32Array]:
        scales = (group_max_abs(values, counts) / self.levels).astype(np.float32)
        per_value = np.repeat(scales, counts).astype(np.float64)
        scaled = np.divide(values, per_value, out=np.zeros_like(values), where=per_value > 0)
        rounded = np.floor(scaled + rng.random(values.size)) if self.stochastic else np.rint(scaled)
        codes = np.clip(rounded, -self.levels, self.levels).astype(np.int8)
        decoded = dequantize(codes, scales, counts)
        packed = codes.tobytes() if self.bits == 8 else pack_int4(codes)
        return scales.astype("<f4").tobytes(), packed, decoded


def pack_int4(codes: npt.NDArray[np.int8]) -> bytes:
    """Nibbles ``q + 8``, value ``2j`` in the low nibble of byte ``j``; an odd count pads a zero nibble."""
    nibbles = (codes.astype(np.int16) + 8).astype(np.uint8)
    if nibbles.size % 2:
        nibbles = np.append(nibbles, np.uint8(0))
    return (nibbles[0::2] | (nibbles[1::2] << 4)).tobytes()


def int_value_bytes(code: int, nnz: int) -> int:
    return nnz if code == ValueCoding.INT8 else (nnz + 1) // 2


def decode_int(
    code: int, data: memoryview, nnz: int, scales: Float32Array, counts: CountArray
) -> Float32Array:
    """Values of an int8 or int4 coding, or :class:`ProtocolError` for a code outside ``[-L, L]``."""
    raw = np.frombuffer(data, dtype=np.uint8)
    if code == ValueCoding.INT8:
        codes = raw.view(np.int8)
        if np.any(codes == -128):
            raise ProtocolError(Reason.MALFORMED, "int8 code -128 is outside [-127, 127]")
    else:
        nibbles = np.empty(2 * raw.size, dtype=np.uint8)
        nibbles[0::2] = raw & 0x0F
        nibbles[1::2] = raw >> 4
        if nibbles.size > nnz and nibbles[-1] != 0:
            raise ProtocolError(Reason.MALFORMED, "int4 padding nibble is not zero")
        nibbles = nibbles[:nnz]
        if np.any(nibbles == 0):
            raise ProtocolError(Reason.MALFORMED, "int4 nibble 0 (code -8) is outside [-7, 7]")
        codes = (nibbles.astype(np.int8) - 8).astype(np.int8)
    return dequantize(codes, scales, counts)
