"""What the round engine reports as it runs, for printing, Prometheus or tests.

A plain base class whose methods do nothing, rather than a Protocol: an observer overrides only
what it cares about, and the engine calls every hook unconditionally.
"""

from __future__ import annotations

from fmfl.aggregator.durable.round_report import RoundSummary


class RoundObserver:
    """Hooks the engine calls; all no-ops here."""

    def round_started(self, round: int, version: int, selected: int) -> None:
        return None

    def round_closed(self, summary: RoundSummary) -> None:
        return None

    def update_accepted(self, nbytes: int, *, late: bool) -> None:
        return None

    def update_rejected(self, reason: str) -> None:
        return None

    def bytes_in(self, nbytes: int) -> None:
        return None

    def bytes_out(self, nbytes: int) -> None:
        return None

    def clients_online(self, count: int) -> None:
        return None


class Observers(RoundObserver):
    """Fans every hook out to several observers."""

    def __init__(self, *observers: RoundObserver) -> None:
        self.observers = list(observers)

    def round_started(self, round: int, version: int, selected: int) -> None:
        for o in self.observers:
            o.round_started(round, version, selected)

    def round_closed(self, summary: RoundSummary) -> None:
        for o in self.observers:
            o.round_closed(summary)

    def update_accepted(self, nbytes: int, *, late: bool) -> None:
        for o in self.observers:
            o.update_accepted(nbytes, late=late)

    def update_rejected(self, reason: str) -> None:
        for o in self.observers:
            o.update_rejected(reason)

    def bytes_in(self, nbytes: int) -> None:
        for o in self.observers:
            o.bytes_in(nbytes)

    def bytes_out(self, nbytes: int) -> None:
        for o in self.observers:
            o.bytes_out(nbytes)

    def clients_online(self, count: int) -> None:
        for o in self.observers:
            o.clients_online(count)
