"""Strategies by name, for the CLI's ``--strategy NAME`` and config files."""

from __future__ import annotations

import inspect
from typing import Any

from fmfl.aggregation.rules import (
    DpFedAvg,
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
from fmfl.aggregation.strategy import Strategy

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (FedAvg, FedAvgM, FedAdam, FedYogi, FedAdagrad, TrimmedMean, Median, Krum, MultiKrum, DpFedAvg)
}


def strategy_options(name: str) -> dict[str, inspect.Parameter]:
    """The keyword options strategy ``name`` takes, with their defaults."""
    cls = _lookup(name)
    params = inspect.signature(cls.__init__).parameters
    return {k: p for k, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def make_strategy(name: str, **options: Any) -> Strategy:
    """Build strategy ``name`` (see ``STRATEGIES``) with keyword ``options``.

    Raises ``ValueError`` naming the bad name or option, or the constructor's own check.
    """
    cls = _lookup(name)
    known = strategy_options(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"strategy {name!r} has no option {', '.join(unknown)}; its options: {', '.join(known)}")
    missing = sorted(k for k, p in known.items() if p.default is inspect.Parameter.empty and k not in options)
    if missing:
        raise ValueError(f"strategy {name!r} needs option {', '.join(missing)}")
    return cls(**options)


def _lookup(name: str) -> type[Strategy]:
    try:
        # "trimmed_mean" names TrimmedMean as "trimmed-mean" does (older docs and scripts spelled names with "_").
        return STRATEGIES[name] if name in STRATEGIES else STRATEGIES[name.replace("_", "-")]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)}") from None
