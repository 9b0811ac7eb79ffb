"""The device's local data set: model-ready input arrays and labels, with a split and a batch iterator."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]


class RowView:
    """Selected rows of a memory-mapped array, read only when asked for.

    ``subset`` of a feature cache (``np.load(..., mmap_mode="r")``) would otherwise copy every selected row
    into RAM: the train/eval split of 6,000 MiniLM last:1 samples is 590 MB. A batch reads its rows from the
    file; ``np.asarray`` materialises the view for code that needs a real array.
    """

    def __init__(self, base: np.ndarray, rows: npt.NDArray[np.int64]) -> None:
        self.base, self.rows = base, rows

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.base.shape[1:])

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.base.dtype

    @property
    def ndim(self) -> int:
        return int(self.base.ndim)

    def __getitem__(self, index: Any) -> Array:
        return np.asarray(self.base[self.rows[index]])

    def __array__(self, dtype: Any = None, copy: Any = None) -> Array:
        rows = np.asarray(self.base[self.rows])
        return rows if dtype is None else rows.astype(dtype)

    def subset(self, index: npt.NDArray[np.int64]) -> RowView:
        return RowView(self.base, self.rows[index])


def _take(array: Any, index: npt.NDArray[np.int64]) -> Any:
    """``array[index]``, lazily for memory-mapped arrays (see ``RowView``)."""
    if isinstance(array, RowView):
        return array.subset(index)
    if isinstance(array, np.memmap):
        return RowView(array, index)
    return array[index]


class Batch(NamedTuple):
    """One mini-batch: the model inputs by name, the labels (None for unlabelled data), the sample indices."""

    inputs: dict[str, Array]
    labels: npt.NDArray[np.int64] | None
    indices: npt.NDArray[np.int64]


# eq=False: field-wise == on numpy arrays is ambiguous; two data sets are equal only when identical.
@dataclass(frozen=True, eq=False)
class LocalDataset:
    """Preprocessed local samples, ready for the model.

    Attributes:
        inputs: model input name -> array whose first axis is the sample (``pixel_values`` float32 NCHW,
            ``input_ids`` / ``attention_mask`` / ``token_type_ids`` int64 [N, max_seq_len]).
        labels: int64 [N] indices into ``label_names``, or None (captions without labels).
        label_names: the class names, the manifest's when it gave them.
        source: where the data was read from, for messages.
    """

    inputs: dict[str, Array]
    labels: npt.NDArray[np.int64] | None
    label_names: tuple[str, ...] = ()
    source: str = ""
    _size: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.inputs:
            raise ValueError("a LocalDataset needs at least one input array")
        sizes = {name: len(array) for name, array in self.inputs.items()}
        if self.labels is not None:
            sizes["labels"] = len(self.labels)
        if len(set(sizes.values())) != 1:
            raise ValueError(f"inputs and labels disagree on the number of samples: {sizes}")
        object.__setattr__(self, "_size", next(iter(sizes.values())))

    def __len__(self) -> int:
        return self._size

    def subset(self, indices: npt.ArrayLike) -> LocalDataset:
        """The samples at ``indices``, in that order."""
        index = np.asarray(indices, dtype=np.int64)
        return LocalDataset(
            inputs={name: _take(array, index) for name, array in self.inputs.items()},
            labels=None if self.labels is None else self.labels[index],
            label_names=self.label_names,
            source=self.source,
        )

    def split(self, eval_fraction: float, seed: int) -> tuple[LocalDataset, LocalDataset]:
        """A deterministic random split into ``(train, eval)``.

        ``round(eval_fraction * len(self))`` samples go to eval, at least one when ``eval_fraction > 0``
        and at most ``len(self) - 1``, so that training always has data; ``eval_fraction == 0`` gives an
        empty eval set.
        """
        if not 0.0 <= eval_fraction < 1.0:
            raise ValueError(f"eval_fraction must be in [0, 1), got {eval_fraction}")
        n = len(self)
        n_eval = min(round(eval_fraction * n), max(n - 1, 0))
        if eval_fraction > 0 and n >= 2:
            n_eval = max(n_eval, 1)
        order = np.random.default_rng(seed).permutation(n)
        return self.subset(np.sort(order[n_eval:])), self.subset(np.sort(order[:n_eval]))

    def batches(
        self, batch_size: int, seed: int = 0, shuffle: bool = True, drop_last: bool = False
    ) -> Iterator[Batch]:
        """One pass over the data in mini-batches, in a ``seed``-determined order when ``shuffle``."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        n = len(self)
        order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n, dtype=np.int64)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            index = order[start : start + batch_size]
            yield Batch(
                inputs={name: array[index] for name, array in self.inputs.items()},
                labels=None if self.labels is None else self.labels[index],
                indices=index,
            )

    def label_counts(self) -> npt.NDArray[np.int64]:
        """Samples per class (length ``len(label_names)``); empty for unlabelled data."""
        if self.labels is None:
            return np.zeros(0, dtype=np.int64)
        return np.bincount(self.labels, minlength=len(self.label_names)).astype(np.int64)
