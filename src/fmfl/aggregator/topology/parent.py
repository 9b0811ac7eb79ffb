"""``RoundSource`` of a lower-tier gateway (``core/modes.py``): its rounds come from a parent gateway.

Each local round answers one task of the parent that selects this gateway, on the parent's model; the
round's weighted sum goes up as one update (``UpstreamTier.forward``) and the parent makes the version.
So the rule must be of the FedAvg family: a weighted mean is what can be forwarded as one update.
"""

from __future__ import annotations

from fmfl.aggregation.rules import MeanStrategy
from fmfl.aggregation.strategy import Strategy
from fmfl.aggregator.core.modes import Poll
from fmfl.aggregator.core.outbound import Outgoing
from fmfl.aggregator.durable.journal import RoundJournal
from fmfl.aggregator.topology.tier import UpstreamTier
from fmfl.errors import FmflError
from fmfl.protocol import Limits, RoundTask

#: the journal key of the parent task the open local round answers (a restart forwards to the same one)
PARENT_TASK_KEY = "parent_task"


class ParentTier:
    """Trains the parent's tasks that select us; never finishes on its own (it serves until stopped)."""

    makes_versions = False

    def __init__(self, upstream: UpstreamTier, strategy: Strategy, limits: Limits) -> None:
        if not isinstance(strategy, MeanStrategy):
            raise FmflError("a lower-tier gateway needs a FedAvg-family --strategy")
        self.upstream = upstream
        self.limits = limits
        self._task: RoundTask | None = None

    def subscriptions(self) -> list[str]:
        return self.upstream.subscriptions()

    def owns(self, topic: str) -> bool:
        return self.upstream.owns(topic)

    def handle(self, topic: str, payload: bytes) -> list[Outgoing]:
        return self.upstream.handle(topic, payload)

    def will(self) -> tuple[str, bytes] | None:
        return self.upstream.will()

    def start(self) -> list[Outgoing]:
        return self.upstream.start()

    def finished(self, versions_made: int) -> bool:
        return False

    def poll(self, now: float) -> Poll:
        out = self.upstream.tick()
        ready = self.upstream.ready(now)
        if ready is None:
            return Poll(out, may_open=False)
        self._task = ready[0]
        return Poll(out, may_open=True, adopt=ready)

    def begin(self, journal: RoundJournal) -> None:
        if self._task is not None:
            self.upstream.begin(self._task)
            journal.put(PARENT_TASK_KEY, self._task.to_bytes().hex())

    def parent_task(self, journal: RoundJournal) -> RoundTask:
        """The parent's task the open local round answers (journaled, so a restart forwards to the same one)."""
        return RoundTask.from_bytes(bytes.fromhex(journal.get(PARENT_TASK_KEY)), self.limits)

    def forward(self, parent: RoundTask, strategy: Strategy, metrics: dict[str, float]) -> list[Outgoing]:
        """The closed local round's weighted sum, sent to the parent as one update for ``parent``."""
        assert isinstance(strategy, MeanStrategy)  # checked in __init__
        return self.upstream.forward(parent, strategy.weighted_sum, metrics)
