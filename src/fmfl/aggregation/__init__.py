"""Aggregation rules: pure numpy, no MQTT, no files, no gateway.

What a round does with the updates it accepted, usable by the gateway (``fmfl.aggregator``) and the
in-process simulation (``fmfl.simulation``) alike:

- ``validate_update`` / ``RejectedUpdate`` / ``UpdateLimits``: the checks before anything is touched;
- ``Strategy`` (a template method, like Flower's strategies; ``MeanStrategy``: the FedAvg family, whose
  round is one mergeable weighted sum) and one module per rule in ``rules/``,
  each naming its paper; ``make_strategy(name, **options)`` picks one by name (``catalog``);
- ``WeightedSum``: the O(nnz) streaming weighted sum, mergeable across workers and tiers;
  ``ClientBuffer``: the bounded store of whole updates that the robust rules need;
- ``staleness_weight``: FedBuff's scaling of late updates in async mode;
- ``CorruptState``: raised when a saved aggregation state (npz, never pickle) does not load.
"""

from fmfl.aggregation.accumulator import WeightedSum
from fmfl.aggregation.buffer import ClientBuffer
from fmfl.aggregation.catalog import STRATEGIES, make_strategy, strategy_options
from fmfl.aggregation.rules import (
    DpFedAvg,
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedOpt,
    FedYogi,
    Krum,
    MeanStrategy,
    Median,
    MultiKrum,
    TrimmedMean,
)
from fmfl.aggregation.sparse import SparseVector, densify
from fmfl.aggregation.staleness import staleness_weight
from fmfl.aggregation.state_file import CorruptState
from fmfl.aggregation.strategy import CheckedUpdate, RoundStateError, Strategy
from fmfl.aggregation.validation import RejectedUpdate, UpdateLimits, ValidUpdate, validate_update

__all__ = [
    "STRATEGIES",
    "CheckedUpdate",
    "ClientBuffer",
    "CorruptState",
    "DpFedAvg",
    "FedAdagrad",
    "FedAdam",
    "FedAvg",
    "FedAvgM",
    "FedOpt",
    "FedYogi",
    "Krum",
    "MeanStrategy",
    "Median",
    "MultiKrum",
    "RejectedUpdate",
    "RoundStateError",
    "SparseVector",
    "Strategy",
    "TrimmedMean",
    "UpdateLimits",
    "ValidUpdate",
    "WeightedSum",
    "densify",
    "make_strategy",
    "staleness_weight",
    "strategy_options",
    "validate_update",
]
