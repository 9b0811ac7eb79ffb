"""The open round: its task, clock and counters. Plain data the engine mutates."""

from __future__ import annotations

from dataclasses import dataclass, field

from fmfl.protocol import RoundTask

REJECTED = "rejected."


@dataclass
class OpenRound:
    """Round ``task.round`` on global ``task.model_version``; ``close_at`` is the effective deadline."""

    task: RoundTask
    opened: float
    close_at: float
    counters: dict[str, int] = field(default_factory=dict)

    @property
    def round(self) -> int:
        return self.task.round

    @property
    def version(self) -> int:
        return self.task.model_version

    @property
    def selected(self) -> frozenset[str]:
        return frozenset(self.task.selected)

    def count(self, key: str, amount: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + amount

    def reject(self, reason: str) -> None:
        self.count(REJECTED + reason)

    def rejected_by_reason(self) -> dict[str, int]:
        return {k[len(REJECTED) :]: v for k, v in sorted(self.counters.items()) if k.startswith(REJECTED)}
