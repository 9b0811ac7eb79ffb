"""FedAvg: the sample-weighted mean of client deltas.

McMahan, Moore, Ramage, Hampson, Agüera y Arcas, "Communication-Efficient Learning of Deep Networks
from Decentralized Data", AISTATS 2017. New global = global + server_lr * sum_k(n_k * delta_k) / sum_k n_k
(``server_lr`` = 1 is the paper's rule). Streaming: O(nnz) per update, one float64 vector of state.
"""

from __future__ import annotations

from typing import ClassVar

from fmfl.aggregation.rules._streaming import MeanStrategy


class FedAvg(MeanStrategy):
    """Sample-weighted averaging of sparse deltas."""

    name: ClassVar[str] = "fedavg"
