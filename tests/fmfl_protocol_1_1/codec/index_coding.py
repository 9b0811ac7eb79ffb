"""Index coding for sparse updates: delta + varint or a bitmap, whichever is smaller.

Delta coding of sorted positions with variable-length integers is the classic inverted-index layout (Witten,
Moffat & Bell, *Managing Gigabytes*, 1999); for sparse gradients see Lin et al. 2018 (Deep Gradient
Compression). A bitmap costs ``size / 8`` bytes whatever the density, so it wins above roughly 1/8 to 1/16
density; the encoder computes both lengths exactly and keeps the smaller. Indices that both sides can
regenerate from a seed (random-k) cost 8 bytes.
"""

from __future__ import annotations

import struct
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from fmfl_protocol_1_1.codec.randk import seeded_indices
from fmfl_protocol_1_1.codec.varint import MAX_VARINT_BYTES, decode_varints, encode_varints, varint_lengths
from fmfl_protocol_1_1.errors import ProtocolError, Reason

IndexArray = npt.NDArray[np.int64]


class IndexCoding(IntEnum):
    """How a payload names the positions of its values (byte 8 of the payload body)."""

    ALL = 0  # every position 0..size-1; empty section
    DELTA_VARINT = 1  # varint(first index), then varint(gap - 1) for each next index
    BITMAP = 2  # ceil(size / 8) bytes, bit 7 of byte 0 is index 0; padding bits are zero
    SEEDED = 3  # 8-byte little-endian seed; indices from random-k's hash (see randk.py)


def delta_gaps(indices: IndexArray) -> npt.NDArray[np.uint64]:
    """The varint values of delta coding: the first index, then each gap minus one."""
    gaps = np.empty(indices.shape, dtype=np.uint64)
    if indices.size:
        gaps[0] = indices[0]
        gaps[1:] = np.diff(indices) - 1
    return gaps


def bitmap_bytes(size: int) -> int:
    return (size + 7) // 8


def encode_indices(indices: IndexArray, size: int) -> tuple[IndexCoding, bytes]:
    """The smaller of delta-varint and bitmap for sorted unique ``indices`` (ties go to delta-varint)."""
    if indices.size == size:
        return IndexCoding.ALL, b""
    gaps = delta_gaps(indices)
    lengths = varint_lengths(gaps)
    if int(lengths.sum()) <= bitmap_bytes(size):
        return IndexCoding.DELTA_VARINT, encode_varints(gaps, lengths)
    mask = np.zeros(size, dtype=np.bool_)
    mask[indices] = True
    return IndexCoding.BITMAP, np.packbits(mask).tobytes()


def encode_seeded(seed: int) -> tuple[IndexCoding, bytes]:
    return IndexCoding.SEEDED, struct.pack("<Q", seed)


def decode_indices(coding: int, section: memoryview, size: int, nnz: int) -> IndexArray:
    """Sorted unique int64 indices below ``size``, or :class:`ProtocolError`. Allocates ``O(size)``."""
    if coding == IndexCoding.ALL:
        if section.nbytes:
            raise ProtocolError(Reason.MALFORMED, "index coding ALL carries no index bytes")
        if nnz != size:
            raise ProtocolError(Reason.MALFORMED, f"index coding ALL needs nnz == size, got {nnz} != {size}")
        return np.arange(size, dtype=np.int64)
    if coding == IndexCoding.DELTA_VARINT:
        if not nnz <= section.nbytes <= MAX_VARINT_BYTES * nnz:
            raise ProtocolError(Reason.MALFORMED, f"{section.nbytes} index bytes cannot hold {nnz} varints")
        gaps = decode_varints(section, nnz)
        if nnz and int(gaps.max()) >= size:
            raise ProtocolError(Reason.INDEX_OUT_OF_RANGE, "an index or gap exceeds the vector size")
        # gaps < size <= 2**31 and nnz <= size, so the cumulative sum stays far below 2**63.
        indices = np.cumsum(gaps.astype(np.int64)) + np.arange(nnz, dtype=np.int64)
        if nnz and int(indices[-1]) >= size:
            raise ProtocolError(Reason.INDEX_OUT_OF_RANGE, f"index {int(indices[-1])} >= size {size}")
        return indices
    if coding == IndexCoding.BITMAP:
        if section.nbytes != bitmap_bytes(size):
            raise ProtocolError(Reason.MALFORMED, f"bitmap of {section.nbytes} bytes for size {size}")
        bits = np.unpackbits(np.frombuffer(section, dtype=np.uint8))
        if bits[size:].any():
            raise ProtocolError(Reason.INDEX_OUT_OF_RANGE, "bitmap padding bits set past the vector size")
        indices = np.flatnonzero(bits)
        if indices.size != nnz:
            raise ProtocolError(Reason.MALFORMED, f"bitmap has {indices.size} bits set, header says {nnz}")
        return indices.astype(np.int64, copy=False)
    if coding == IndexCoding.SEEDED:
        if section.nbytes != 8:
            raise ProtocolError(Reason.MALFORMED, f"seeded index section of {section.nbytes} bytes, not 8")
        (seed,) = struct.unpack("<Q", section)
        return seeded_indices(seed, size, nnz)
    raise ProtocolError(Reason.UNKNOWN_TYPE, f"unknown index coding {coding}")
