"""Gateway aggregator: validation, streaming sparse aggregation, robust rules, crash-safe state.

numpy and the standard library only (the gateway never installs torch). The pieces:

- ``validate_update`` / ``RejectedUpdate`` / ``UpdateLimits``: checks before anything is touched.
- ``WeightedSum``: O(nnz) streaming weighted sum, mergeable across workers and tiers.
- ``Strategy`` and the rules in ``rules/`` (``make_strategy(name, **options)``).
- ``staleness_weight``: FedBuff's scaling for late updates in async mode.
- ``UpdateLog``: the write-ahead log; ``GlobalStore``: versioned global weights and server state.
"""

# Exports load on first use (PEP 562): the CLI imports this package to register its subcommand, and
# ``fmfl --help`` or ``fmfl client`` on a device must not pay for numpy, sqlite or cryptography here.
from importlib import import_module
from typing import Any

_EXPORTS: dict[str, str] = {
    "ClientBuffer": "fmfl.aggregator.buffer",
    "CorruptState": "fmfl.aggregator._npz",
    "DpFedAvg": "fmfl.aggregator.rules",
    "FedAdagrad": "fmfl.aggregator.rules",
    "FedAdam": "fmfl.aggregator.rules",
    "FedAvg": "fmfl.aggregator.rules",
    "FedAvgM": "fmfl.aggregator.rules",
    "FedYogi": "fmfl.aggregator.rules",
    "GlobalStore": "fmfl.aggregator.store",
    "Krum": "fmfl.aggregator.rules",
    "LogError": "fmfl.aggregator.wal",
    "LoggedUpdate": "fmfl.aggregator.wal",
    "Median": "fmfl.aggregator.rules",
    "ModelVersion": "fmfl.aggregator.store",
    "MultiKrum": "fmfl.aggregator.rules",
    "RejectReason": "fmfl.aggregator.validation",
    "RejectedUpdate": "fmfl.aggregator.validation",
    "ReplayReport": "fmfl.aggregator.wal",
    "RoundStateError": "fmfl.aggregator.strategy",
    "STRATEGIES": "fmfl.aggregator.registry",
    "SparseVector": "fmfl.aggregator.sparse",
    "StoreError": "fmfl.aggregator.store",
    "Strategy": "fmfl.aggregator.strategy",
    "TrimmedMean": "fmfl.aggregator.rules",
    "UpdateLimits": "fmfl.aggregator.validation",
    "UpdateLog": "fmfl.aggregator.wal",
    "ValidUpdate": "fmfl.aggregator.validation",
    "WeightedSum": "fmfl.aggregator.accumulator",
    "densify": "fmfl.aggregator.sparse",
    "make_strategy": "fmfl.aggregator.registry",
    "staleness_weight": "fmfl.aggregator.staleness",
    "strategy_options": "fmfl.aggregator.registry",
    "validate_update": "fmfl.aggregator.validation",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
