"""Gateway aggregator: validation, streaming sparse aggregation, robust rules, crash-safe state.

numpy and the standard library only (the gateway never installs torch). The pieces:

- ``validate_update`` / ``RejectedUpdate`` / ``UpdateLimits``: checks before anything is touched.
- ``WeightedSum``: O(nnz) streaming weighted sum, mergeable across workers and tiers.
- ``Strategy`` and the rules in ``rules/`` (``make_strategy(name, **options)``).
- ``staleness_weight``: FedBuff's scaling for late updates in async mode.
- ``UpdateLog``: the write-ahead log; ``GlobalStore``: versioned global weights and server state.
"""

from fmfl.aggregator._npz import CorruptState
from fmfl.aggregator.accumulator import WeightedSum
from fmfl.aggregator.buffer import ClientBuffer
from fmfl.aggregator.registry import STRATEGIES, make_strategy, strategy_options
from fmfl.aggregator.rules import (
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedYogi,
    Krum,
    Median,
    MultiKrum,
    TrimmedMean,
)
from fmfl.aggregator.sparse import SparseVector, densify
from fmfl.aggregator.staleness import staleness_weight
from fmfl.aggregator.store import GlobalStore, ModelVersion, StoreError
from fmfl.aggregator.strategy import RoundStateError, Strategy
from fmfl.aggregator.validation import (
    RejectedUpdate,
    RejectReason,
    UpdateLimits,
    ValidUpdate,
    validate_update,
)
from fmfl.aggregator.wal import LogError, LoggedUpdate, ReplayReport, UpdateLog

__all__ = [
    "STRATEGIES",
    "ClientBuffer",
    "CorruptState",
    "FedAdagrad",
    "FedAdam",
    "FedAvg",
    "FedAvgM",
    "FedYogi",
    "GlobalStore",
    "Krum",
    "LogError",
    "LoggedUpdate",
    "Median",
    "ModelVersion",
    "MultiKrum",
    "RejectReason",
    "RejectedUpdate",
    "ReplayReport",
    "RoundStateError",
    "SparseVector",
    "StoreError",
    "Strategy",
    "TrimmedMean",
    "UpdateLimits",
    "UpdateLog",
    "ValidUpdate",
    "WeightedSum",
    "densify",
    "make_strategy",
    "staleness_weight",
    "strategy_options",
    "validate_update",
]
