"""Plain, obviously-correct numpy/Python references that the fast codec paths are checked against."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def varint_bytes(values: list[int]) -> bytes:
    """LEB128, one value at a time."""
    out = bytearray()
    for value in values:
        while True:
            byte = value & 0x7F
            value >>= 7
            if value:
                out.append(byte | 0x80)
            else:
                out.append(byte)
                break
    return bytes(out)


def top_k_threshold(values: npt.NDArray[np.float64], k: int) -> float:
    """The k-th largest |value| (by full sort)."""
    return float(np.sort(np.abs(values))[::-1][k - 1])


def quantize_groups(
    values: npt.NDArray[np.float64], counts: list[int], levels: int
) -> npt.NDArray[np.float32]:
    """Round-to-nearest linear quantization, one group at a time, decoded in float32."""
    out = []
    start = 0
    for count in counts:
        group = values[start : start + count]
        start += count
        scale = np.float32(np.max(np.abs(group)) / levels) if count else np.float32(0)
        for v in group:
            q = 0.0 if scale == 0 else float(np.clip(np.rint(v / float(scale)), -levels, levels))
            out.append(np.float32(q) * scale)
    return np.array(out, dtype=np.float32)


def sign_groups(values: npt.NDArray[np.float64], counts: list[int]) -> npt.NDArray[np.float32]:
    """mean|v| * sign(v) (0 counted as +), one group at a time."""
    out = []
    start = 0
    for count in counts:
        group = values[start : start + count]
        start += count
        scale = np.float32(np.mean(np.abs(group))) if count else np.float32(0)
        out.extend(scale if v >= 0 else -scale for v in group)
    return np.array(out, dtype=np.float32)
