"""The coordinator's view of its workers during one round (scale-out with shared subscriptions).

With ``--workers``, the coordinator and each worker take a share of the update stream (MQTT 5
``$share``). Workers report every client they accept (``Progress``); the coordinator counts distinct
clients across all of them to close at K. Closing: it publishes a ``CloseRequest``, each worker
freezes its round and sends its ``PartialRound``, and the coordinator merges them into its strategy
with ``Strategy.merge_round``. For the FedAvg family a merge adds ``WeightedSum``s, so the result is
the single-process sum up to float64 addition order (bit for bit whenever the partial sums are
exact; see ``accumulator.py``).

Duplicates across workers. A shared subscription hands each message to any one subscriber, so a
device's resend (its Ack was lost) can reach a second worker, which accepts it too. The first holder
of a client keeps it (the coordinator's own strategy first, then workers in report order); a partial
that repeats a held client is refused whole by ``merge_round`` and its worker is asked to rebuild it
without those clients from its write-ahead log. Every device got a positive Ack, and each update
counts once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from fmfl.aggregation.strategy import Strategy
from fmfl.aggregation.validation import RejectedUpdate
from fmfl.aggregator.core.outbound import Outgoing
from fmfl.aggregator.core.round_state import OpenRound
from fmfl.aggregator.durable.journal import AcceptedRow, RoundJournal
from fmfl.aggregator.topology.messages import CloseRequest, GatewayTopics, PartialRound, Progress
from fmfl.protocol import Reassembler

log = logging.getLogger(__name__)


@dataclass
class _Closing:
    round: int
    seq: int
    deadline: float
    pending: set[str]
    merged: set[str] = field(default_factory=set)
    exclude: dict[str, list[str]] = field(default_factory=dict)


class WorkerPool:
    """Progress and partial rounds of the named workers, for the coordinator's open round."""

    def __init__(
        self, workers: tuple[str, ...], gateway_topics: GatewayTopics, *, partial_timeout: float = 30.0
    ) -> None:
        self.workers = workers
        self.gateway_topics = gateway_topics
        self.partial_timeout = partial_timeout
        self.round: int | None = None
        self._held: dict[str, tuple[str, str]] = {}  # client -> (worker, update id)
        self._closing: _Closing | None = None
        self.merged_rows: list[AcceptedRow] = []
        self.merged_counters: dict[str, int] = {}

    def begin(self, round: int) -> list[Outgoing]:
        """A new (or resumed) round: forget the last one; ask workers to report what they hold."""
        self.round = round
        self._held = {}
        self._closing = None
        self.merged_rows = []
        self.merged_counters = {}
        # Clear the last round's retained close request (a worker starting later must not act on
        # it), and ask running workers to report what they hold (after a coordinator restart).
        return [Outgoing(self.gateway_topics.close, b"", retain=True), Outgoing(self.gateway_topics.sync, b"")]

    # --- while the round is open ------------------------------------------------------------------

    def on_progress(self, progress: Progress) -> None:
        if progress.round != self.round or progress.worker not in self.workers:
            return
        for client, update_id in progress.clients.items():
            self._held.setdefault(client, (progress.worker, update_id))

    def holder(self, client_id: str) -> tuple[str, str] | None:
        """``(worker, update id)`` if a worker reported ``client_id`` this round."""
        return self._held.get(client_id)

    def clients(self) -> set[str]:
        return set(self._held)

    # --- closing ----------------------------------------------------------------------------------

    @property
    def closing(self) -> bool:
        return self._closing is not None

    def start_close(self, round: int, now: float) -> list[Outgoing]:
        """Ask every worker for its share of ``round`` (retained, so a restarting worker sees it)."""
        seq = time.time_ns()  # grows across coordinator restarts, so workers answer every request
        self._closing = _Closing(round, seq, now + self.partial_timeout, set(self.workers))
        return [self._close_message()]

    def _close_message(self) -> Outgoing:
        assert self._closing is not None
        c = self._closing
        return Outgoing(self.gateway_topics.close, CloseRequest(c.round, c.seq, c.exclude).to_bytes(), retain=True)

    def on_partial(self, partial: PartialRound, strategy: Strategy) -> list[Outgoing]:
        """Merge a worker's share, or ask it to rebuild without clients another gateway holds."""
        c = self._closing
        if c is None or partial.round != c.round or partial.worker not in c.pending or partial.seq != c.seq:
            return []  # stale (an earlier request's answer) or not asked for
        try:
            strategy.merge_round(partial.payload)
        except RejectedUpdate:
            overlap = sorted(set(partial.clients) & set(strategy.clients))
            log.info(
                "worker %s holds %d client(s) already merged; asking for a rebuild",
                partial.worker,
                len(overlap),
            )
            c.exclude[partial.worker] = sorted(set(c.exclude.get(partial.worker, [])) | set(overlap))
            c.seq = time.time_ns()
            return [self._close_message()]
        c.pending.discard(partial.worker)
        c.merged.add(partial.worker)
        self.merged_rows += [r for r in partial.rows if r.client_id in partial.clients]
        for key, value in partial.counters.items():
            self.merged_counters[key] = self.merged_counters.get(key, 0) + value
        return []

    def close_done(self, now: float) -> bool:
        """Every worker answered, or the partial timeout passed (missing shares are left out)."""
        c = self._closing
        if c is None:
            return False
        if c.pending and now >= c.deadline:
            log.warning(
                "round %d: no share from worker(s) %s within %.0f s; aggregating without them",
                c.round,
                sorted(c.pending),
                self.partial_timeout,
            )
            c.pending.clear()
        return not c.pending


class WorkerClosing:
    """``RoundClosing`` of a coordinator (``core/modes.py``): the round closes across its workers.

    Quorum counts distinct clients of this process and every worker; at quorum the coordinator stops
    accepting, asks each worker for its share and closes once all are merged (or their time is up).
    """

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool

    def subscriptions(self) -> list[str]:
        base = self.pool.gateway_topics.base
        return [f"{base}/progress/+", f"{base}/partial/+"]

    def owns(self, topic: str) -> bool:
        return self.pool.gateway_topics.parse(topic) is not None

    def on_message(self, topic: str, payload: bytes, strategy: Strategy, reassembler: Reassembler,
                   round_open: bool) -> list[Outgoing]:
        parsed = self.pool.gateway_topics.parse(topic)
        if parsed is None or not payload or parsed[0] not in ("progress", "partial"):
            return []  # our own close/sync requests echoed back, or a cleared retained message
        if parsed[0] == "progress":
            self.pool.on_progress(Progress.from_bytes(payload))
            return []
        data = reassembler.add(payload, source=topic)
        if data is None or not round_open:
            return []
        return self.pool.on_partial(PartialRound.from_bytes(data), strategy)

    def holder(self, client_id: str) -> tuple[str, str] | None:
        return self.pool.holder(client_id)

    @property
    def in_progress(self) -> bool:
        return self.pool.closing

    def accepted(self, strategy: Strategy) -> int:
        return len(strategy.clients | self.pool.clients())

    def begin(self, round_no: int) -> list[Outgoing]:
        return self.pool.begin(round_no)

    def resume(self, round_no: int) -> None:
        self.pool.begin(round_no)  # reconnect() asks the workers to report again

    def reconnect(self) -> list[Outgoing]:
        return [] if self.pool.closing else [Outgoing(self.pool.gateway_topics.sync, b"")]

    def request_close(self, round_no: int, now: float) -> list[Outgoing] | None:
        return self.pool.start_close(round_no, now)

    def done(self, now: float) -> bool:
        return self.pool.close_done(now)

    def merge_into(self, journal: RoundJournal, current: OpenRound) -> None:
        # The workers' accepted updates join the journal so the metrics line covers them.
        for row in self.pool.merged_rows:
            journal.record_accepted(row, current.counters)
        current.merge(self.pool.merged_counters)
