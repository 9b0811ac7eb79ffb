"""Deployment modes as plug-ins of the round engine: how a round closes, where rounds come from.

The engine runs a round the same way in every deployment; two small interfaces hold what differs:

- ``RoundClosing``: how the open round reaches its end. ``LocalClosing``: this process counts the updates
  it accepted and closes at quorum K or the deadline. ``WorkerClosing`` (``topology/coordinator.py``): a
  coordinator counts clients across its workers and, at quorum, collects and merges their partial sums.
- ``RoundSource``: where rounds come from and where their result goes. ``LocalRun``: this gateway selects
  devices itself and each round's aggregate becomes its next global version, until ``rounds`` versions.
  ``ParentTier`` (``topology/parent.py``): a lower tier runs a local round for each task of its parent
  that selects it, on the parent's model, and sends the round's weighted sum up as one update; the
  parent makes the version.

A worker (``topology/worker.py``) is not a mode of the engine: it holds no round of its own, only a share.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from fmfl.aggregation.sparse import Float32Array
from fmfl.aggregation.strategy import Strategy
from fmfl.aggregator.core.outbound import Outgoing
from fmfl.aggregator.core.round_state import OpenRound
from fmfl.aggregator.durable.journal import RoundJournal
from fmfl.protocol import Reassembler, RoundTask


class RoundClosing(Protocol):
    """How the open round closes (``LocalClosing`` or ``WorkerClosing``)."""

    def subscriptions(self) -> list[str]:
        """Topic filters of the peers taking part in closing (none locally)."""
        ...

    def owns(self, topic: str) -> bool:
        """Whether ``topic`` is a peer's message for this closing (the engine routes it here)."""
        ...

    def on_message(self, topic: str, payload: bytes, strategy: Strategy, reassembler: Reassembler,
                   round_open: bool) -> list[Outgoing]:
        """A peer's message; raises ``FmflError`` / ``ProtocolError`` for a malformed one."""
        ...

    def holder(self, client_id: str) -> tuple[str, str] | None:
        """``(node, update id)`` when another node already accepted ``client_id``'s update this round."""
        ...

    @property
    def in_progress(self) -> bool:
        """Closing has started and waits for peers: updates are no longer accepted here."""
        ...

    def accepted(self, strategy: Strategy) -> int:
        """Distinct clients accepted this round, by every node."""
        ...

    def begin(self, round_no: int) -> list[Outgoing]:
        """A round opened: what to tell the peers."""
        ...

    def resume(self, round_no: int) -> None:
        """The journal's open round continues after a restart (``reconnect`` follows)."""
        ...

    def reconnect(self) -> list[Outgoing]:
        """(Re)connected with a round open: what to ask the peers again."""
        ...

    def request_close(self, round_no: int, now: float) -> list[Outgoing] | None:
        """Quorum or deadline reached: ``None`` to close at once, or what to send and then wait for."""
        ...

    def done(self, now: float) -> bool:
        """While ``in_progress``: every peer's share is in (or their time is up)."""
        ...

    def merge_into(self, journal: RoundJournal, current: OpenRound) -> None:
        """At close: the peers' accepted updates and counters join this node's journal and round."""
        ...


class LocalClosing:
    """One process holds the whole round: it closes when it counts K clients or the deadline passes."""

    in_progress = False

    def subscriptions(self) -> list[str]:
        return []

    def owns(self, topic: str) -> bool:
        return False

    def on_message(self, topic: str, payload: bytes, strategy: Strategy, reassembler: Reassembler,
                   round_open: bool) -> list[Outgoing]:
        return []

    def holder(self, client_id: str) -> tuple[str, str] | None:
        return None

    def accepted(self, strategy: Strategy) -> int:
        return strategy.client_count

    def begin(self, round_no: int) -> list[Outgoing]:
        return []

    def resume(self, round_no: int) -> None:
        return None

    def reconnect(self) -> list[Outgoing]:
        return []

    def request_close(self, round_no: int, now: float) -> list[Outgoing] | None:
        return None

    def done(self, now: float) -> bool:
        return True

    def merge_into(self, journal: RoundJournal, current: OpenRound) -> None:
        return None


class Poll(NamedTuple):
    """What ``RoundSource.poll`` says: what to publish, and whether a round may open now.

    ``adopt``: the parent's task and model a lower tier's next round works on (``None`` for a local run).
    """

    out: list[Outgoing]
    may_open: bool
    adopt: tuple[RoundTask, Float32Array] | None = None


class RoundSource(Protocol):
    """Where rounds come from and where their result goes (``LocalRun`` or ``ParentTier``)."""

    #: a round's aggregate becomes this gateway's next version (False: a parent tier forwards it up)
    makes_versions: bool

    def subscriptions(self) -> list[str]: ...

    def owns(self, topic: str) -> bool: ...

    def handle(self, topic: str, payload: bytes) -> list[Outgoing]: ...

    def will(self) -> tuple[str, bytes] | None:
        """The MQTT will to connect with (a lower tier is a device to its parent)."""
        ...

    def start(self) -> list[Outgoing]:
        """What to publish on (re)connecting."""
        ...

    def finished(self, versions_made: int) -> bool:
        """No round is left to run."""
        ...

    def poll(self, now: float) -> Poll:
        """Between rounds: may the next one open, and on which task of a parent."""
        ...

    def begin(self, journal: RoundJournal) -> None:
        """A local round opened (a lower tier records which parent round it answers)."""
        ...


class LocalRun:
    """This gateway selects its devices and makes ``rounds`` new global versions."""

    makes_versions = True

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds

    def subscriptions(self) -> list[str]:
        return []

    def owns(self, topic: str) -> bool:
        return False

    def handle(self, topic: str, payload: bytes) -> list[Outgoing]:
        return []

    def will(self) -> tuple[str, bytes] | None:
        return None

    def start(self) -> list[Outgoing]:
        return []

    def finished(self, versions_made: int) -> bool:
        return versions_made >= self.rounds

    def poll(self, now: float) -> Poll:
        return Poll([], may_open=True)

    def begin(self, journal: RoundJournal) -> None:
        return None
