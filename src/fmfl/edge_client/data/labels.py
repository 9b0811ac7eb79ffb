"""Raw labels from files (class names, integer indices, digit strings from CSV) to the model's label indices.

With the manifest's label names, a name maps to its position and an integer must index the list; anything else
is a :class:`DataError` naming the label and where it was read. Without them (trying a bundle on a user's own
data), names are sorted to give indices, and integers are kept as they are with names ``"0"``, ``"1"``, ...
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from fmfl.edge_client.data.errors import DataError

RawLabel = str | int
Origins = Sequence[str] | str


def _where(origins: Origins, i: int) -> str:
    return origins if isinstance(origins, str) else origins[i]


def _as_index(value: RawLabel) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def resolve_labels(
    raw: Sequence[RawLabel] | npt.NDArray[np.integer],
    origins: Origins,
    label_names: Sequence[str] | None,
) -> tuple[npt.NDArray[np.int64], tuple[str, ...]]:
    """Map raw labels to int64 indices; returns ``(indices, label names)``.

    ``origins`` is where each label was read (one string per label, or one for all), for the error message.
    """
    if isinstance(raw, np.ndarray):
        return _resolve_array(raw, origins, label_names)
    if label_names is not None:
        names = tuple(label_names)
        position = {name: i for i, name in enumerate(names)}
        out = np.empty(len(raw), dtype=np.int64)
        for i, value in enumerate(raw):
            if isinstance(value, str) and value in position:
                out[i] = position[value]
                continue
            index = _as_index(value)
            if index is None or not 0 <= index < len(names):
                raise DataError(
                    f"{_where(origins, i)}: label {value!r} is not one of the model's labels "
                    f"({_preview(names)})"
                )
            out[i] = index
        return out, names
    indices = [_as_index(value) for value in raw]
    if all(index is not None for index in indices):
        return _resolve_array(np.array(indices, dtype=np.int64), origins, None)
    for i, (value, index) in enumerate(zip(raw, indices, strict=True)):
        if index is not None:
            raise DataError(
                f"{_where(origins, i)}: label {value!r} is an index but other labels are class names; "
                "use all names or all indices"
            )
        if not isinstance(value, str) or not value.strip():
            raise DataError(f"{_where(origins, i)}: label {value!r} is neither a class name nor an index")
    found = tuple(sorted({str(value) for value in raw}))
    position = {name: i for i, name in enumerate(found)}
    return np.array([position[str(value)] for value in raw], dtype=np.int64), found


def _resolve_array(
    raw: npt.NDArray[np.integer], origins: Origins, label_names: Sequence[str] | None
) -> tuple[npt.NDArray[np.int64], tuple[str, ...]]:
    if raw.ndim != 1 or not np.issubdtype(raw.dtype, np.integer):
        raise DataError(
            f"{_where(origins, 0)}: labels must be a 1-D integer array, got {raw.dtype} {raw.shape}"
        )
    labels = raw.astype(np.int64)
    if labels.size and labels.min() < 0:
        bad = int(np.flatnonzero(labels < 0)[0])
        raise DataError(f"{_where(origins, bad)}: label {int(labels[bad])} is negative")
    if label_names is None:
        count = int(labels.max()) + 1 if labels.size else 0
        return labels, tuple(str(i) for i in range(count))
    names = tuple(label_names)
    outside = np.flatnonzero(labels >= len(names))
    if outside.size:
        bad = int(outside[0])
        raise DataError(
            f"{_where(origins, bad)}: label {int(labels[bad])} is outside the model's {len(names)} labels "
            f"(0..{len(names) - 1}: {_preview(names)})"
        )
    return labels, names


def _preview(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")
