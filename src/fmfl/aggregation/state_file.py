"""npz <-> bytes without pickle, shared by every serialisable piece of aggregator state.

``allow_pickle=False`` on load matters: partial sums arrive from other workers or a lower-tier
gateway, and a pickled object array in them would be code execution.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from fmfl.errors import FmflError


class CorruptState(FmflError):
    """Serialised aggregator state that cannot be read back (truncated, wrong kind, wrong version)."""


def dump_arrays(arrays: Mapping[str, npt.ArrayLike]) -> bytes:
    buf = io.BytesIO()
    # Typed Any: numpy's stub also offers a bool ``allow_pickle`` keyword (numpy >= 2.1 only; on
    # 1.26 it would be saved as an array), which a dict of arrays cannot be checked against.
    named: dict[str, Any] = {k: np.asarray(v) for k, v in arrays.items()}
    np.savez(buf, **named)
    return buf.getvalue()


def load_arrays(data: bytes, *, kind: str, required: tuple[str, ...]) -> dict[str, npt.NDArray[np.generic]]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise CorruptState(f"cannot read {kind} state: {exc}") from exc
    if str(arrays.get("kind", "")) != kind:
        raise CorruptState(f"expected {kind} state, got {str(arrays.get('kind', '?'))!r}")
    missing = [k for k in required if k not in arrays]
    if missing:
        raise CorruptState(f"{kind} state lacks {', '.join(missing)}")
    return arrays
