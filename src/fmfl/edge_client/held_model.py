"""A global model held in memory, for a device side that keeps no state folder: a lower-tier gateway towards
its parent (it starts each process from the parent's retained model) and the tests' simulated devices.

It is a ``ModelHolder`` (``model_feed.py``): until the first model arrives it holds no version (-1, so the
hello names none and any task's version is one to fetch), and it refuses weights of the wrong shape or with
non-finite values, as ``EdgeDevice.accept_global`` does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class HeldRunsInMemory:
    """The runs of the held model and of the last delta seen (``HeldRuns``), forgotten at exit."""

    def __init__(self, root: Path) -> None:
        self.root = root  # where the feed keeps its downlink counts
        self.model_run: int | None = None
        self.delta_run: int | None = None

    def note_delta_run(self, run: int) -> None:
        self.delta_run = run


class HeldModel:
    """The last good global model of ``size`` float32 weights, or none yet."""

    def __init__(self, size: int, root: Path) -> None:
        self.state = HeldRunsInMemory(root)
        self.initial = np.zeros(size, dtype=np.float32)  # only its size is read: no version is held yet
        self._held: tuple[int, np.ndarray] | None = None

    def global_model(self) -> tuple[int, np.ndarray]:
        return self._held if self._held is not None else (-1, self.initial)

    def accept_global(self, version: int, weights: np.ndarray, run: int | None = None) -> None:
        if weights.shape != self.initial.shape or not np.isfinite(weights).all():
            raise ValueError(
                f"global model v{version} has shape {weights.shape} or non-finite values; kept the last good one"
            )
        self._held = (version, np.asarray(weights, dtype=np.float32))
        self.state.model_run = run
