"""The gateway: runs the rounds over MQTT, aggregates updates as they stream in, survives crashes.

numpy and the standard library only (the gateway never installs torch). The tree is the design:

- ``core/``: the round as a sans-IO state machine (``RoundEngine``: ``handle/tick/start -> Outgoing``):
  update intake, the open round, selection, tasks and global models going out, the downlink;
- ``durable/``: what survives a crash: the write-ahead log of updates (``UpdateLog``), the round
  journal, the versioned global model (``GlobalStore``), the run's identity, ``metrics.jsonl``;
- ``topology/``: scale-out: the coordinator and its workers (shared subscriptions, partial sums) and
  tiers (a gateway that is a device of a parent gateway);
- ``app/``: the process: the MQTT adapter that drives the engine, the server wiring, observers and
  Prometheus metrics;
- ``cli/``: ``fmfl aggregator`` and ``fmfl aggregator-worker``.

The aggregation rules themselves are ``fmfl.aggregation`` (pure numpy, shared with the simulation).
"""

# Exports load on first use (PEP 562): the CLI imports this package to register its subcommand, and
# ``fmfl --help`` or ``fmfl client`` on a device must not pay for numpy, sqlite or cryptography here.
from importlib import import_module
from typing import Any

_EXPORTS: dict[str, str] = {
    "GlobalStore": "fmfl.aggregator.durable.store",
    "LogError": "fmfl.aggregator.durable.wal",
    "LoggedUpdate": "fmfl.aggregator.durable.wal",
    "ModelVersion": "fmfl.aggregator.durable.store",
    "ReplayReport": "fmfl.aggregator.durable.wal",
    "RoundEngine": "fmfl.aggregator.core.engine",
    "StoreError": "fmfl.aggregator.durable.store",
    "UpdateLog": "fmfl.aggregator.durable.wal",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
