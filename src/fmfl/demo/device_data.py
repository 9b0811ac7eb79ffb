"""One device's data as the device itself sees it, shared by the baselines and the personalized evaluation.

Its own module so that ``baselines`` (which runs the personalized evaluation) and ``personalized`` (which
reads these splits) do not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fmfl.edge_client.data import LocalDataset


@dataclass(frozen=True)
class DeviceData:
    """One device's data as the device sees it: its training split and its own held-out split (suffix inputs),
    and the rows of the pooled training set its training split holds (for the raw-input classic baseline)."""

    client_id: str
    train: LocalDataset
    held_out: LocalDataset
    train_rows: np.ndarray
