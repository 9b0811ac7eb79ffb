"""The IDX file format of MNIST and Fashion-MNIST: read and write, with validation.

Format (LeCun et al., http://yann.lecun.com/exdb/mnist/): a 4-byte magic number ``0x00 0x00 TYPE NDIM``,
then NDIM big-endian uint32 dimension sizes, then the values in row-major order. Only TYPE 0x08 (unsigned
byte) is used by these data sets, so it is the only type accepted here. Files may be gzipped (``.gz``).
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fmfl.datasets.errors import DatasetCorrupt
from fmfl.durable import atomic_write

_UBYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"


class IdxFormatError(DatasetCorrupt):
    """An IDX file that is truncated, corrupt or of an unexpected shape."""


def _read_bytes(path: Path) -> bytes:
    try:
        with path.open("rb") as raw:
            head = raw.read(2)
        # Decide by content, not by name: a decompressed file keeping its .gz name still reads.
        if head == _GZIP_MAGIC:
            with gzip.open(path, "rb") as stream:
                return stream.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise IdxFormatError(f"{path}: cannot read IDX file ({exc})") from exc


def read_idx(path: str | os.PathLike[str], *, ndim: int | None = None) -> npt.NDArray[np.uint8]:
    """Read an IDX file of unsigned bytes (gzipped or not) into an array of its declared shape.

    Raises:
        IdxFormatError: the file cannot be read, its magic number is wrong, it has ``ndim`` set and another
            number of dimensions, or its length does not match its declared dimensions.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise IdxFormatError(f"{path}: {len(data)} bytes, too short for an IDX header")
    zero, dtype, dims = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != _UBYTE or dims == 0:
        raise IdxFormatError(
            f"{path}: bad IDX magic number 0x{data[:4].hex()} (expected 0x000008NN, unsigned bytes)"
        )
    if ndim is not None and dims != ndim:
        raise IdxFormatError(f"{path}: IDX file has {dims} dimensions, expected {ndim}")
    header = 4 + 4 * dims
    if len(data) < header:
        raise IdxFormatError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{dims}I", data[4:header])
    expected = int(np.prod(shape, dtype=np.int64))
    if len(data) - header != expected:
        raise IdxFormatError(
            f"{path}: IDX header declares shape {tuple(shape)} ({expected} bytes) "
            f"but the file holds {len(data) - header} bytes of data (truncated or corrupt)"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def write_idx(path: str | os.PathLike[str], array: npt.ArrayLike) -> Path:
    """Write a uint8 array as an IDX file, gzipped when ``path`` ends in ``.gz``; atomic, durable replace."""
    values = np.asarray(array)
    if values.dtype != np.uint8:
        raise ValueError(f"IDX files hold unsigned bytes; got dtype {values.dtype}")
    if values.ndim == 0 or values.ndim > 255:
        raise ValueError(f"IDX needs 1 to 255 dimensions; got {values.ndim}")
    path = Path(path)
    header = struct.pack(">HBB", 0, _UBYTE, values.ndim) + struct.pack(f">{values.ndim}I", *values.shape)
    payload = header + np.ascontiguousarray(values).tobytes()
    if path.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)
    atomic_write(path, payload)
    return path
