"""The open round: its task, clock and counters. Plain data the engine mutates.

The counters are stored as one flat ``dict[str, int]`` (the journal keeps it as JSON, a worker sends it to
its coordinator in a ``PartialRound``), but only this module spells its keys: code counts through
``OpenRound.count`` (a ``CounterName``, checked by mypy) and ``OpenRound.reject`` (an ``AckReason``), and
reads through ``OpenRound.tally`` (a typed ``RoundCounters``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from fmfl.protocol import AckReason, RoundTask

#: bytes of update chunks received, bytes published (models, tasks, Acks), bytes of accepted updates, and
#: updates accepted into a later round (async mode)
CounterName = Literal["bytes_up", "bytes_down", "accepted_bytes", "late"]
REJECTED = "rejected."  # + the AckReason: refusals by reason
# Labels written by gateways before the one vocabulary (fmfl.protocol.reasons), read from an older journal.
_RENAMED = {"non-finite": AckReason.NON_FINITE, "size": AckReason.SIZE_MISMATCH, "client-id": AckReason.INVALID_ID}


@dataclass(frozen=True)
class RoundCounters:
    """A round's counters, typed: what ``metrics.jsonl`` and the round line report."""

    bytes_up: int = 0
    bytes_down: int = 0
    accepted_bytes: int = 0
    late: int = 0
    rejected: Mapping[str, int] = field(default_factory=dict)  # AckReason value -> count, sorted by reason

    @classmethod
    def from_dict(cls, counters: Mapping[str, int]) -> RoundCounters:
        rejected: dict[str, int] = {}
        for key, value in counters.items():
            if key.startswith(REJECTED):
                reason = key[len(REJECTED) :]
                reason = _RENAMED.get(reason, reason)
                rejected[reason] = rejected.get(reason, 0) + value
        return cls(
            bytes_up=counters.get("bytes_up", 0),
            bytes_down=counters.get("bytes_down", 0),
            accepted_bytes=counters.get("accepted_bytes", 0),
            late=counters.get("late", 0),
            rejected=dict(sorted(rejected.items())),
        )


@dataclass
class OpenRound:
    """Round ``task.round`` on global ``task.model_version``; ``close_at`` is the effective deadline."""

    task: RoundTask
    opened: float
    close_at: float
    counters: dict[str, int] = field(default_factory=dict)  # the stored form; see the module docstring

    @property
    def round(self) -> int:
        return self.task.round

    @property
    def version(self) -> int:
        return self.task.model_version

    @cached_property
    def selected(self) -> frozenset[str]:
        # Built once: every update of the round asks, and 10,000 ids per ask was O(N) per update.
        return frozenset(self.task.selected)

    def count(self, key: CounterName, amount: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + amount

    def reject(self, reason: AckReason | str) -> None:
        """Count one refusal; ``reason`` is an ``AckReason`` (a ``Verdict`` carries it as its string)."""
        self.counters[REJECTED + reason] = self.counters.get(REJECTED + reason, 0) + 1

    def merge(self, counters: Mapping[str, int]) -> None:
        """Add another share's counters (a worker's ``PartialRound.counters``, in the stored form)."""
        for key, value in counters.items():
            self.counters[key] = self.counters.get(key, 0) + value

    def tally(self) -> RoundCounters:
        return RoundCounters.from_dict(self.counters)

    def rejected_by_reason(self) -> dict[str, int]:
        return dict(self.tally().rejected)
