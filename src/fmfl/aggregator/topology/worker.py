"""An aggregation worker: takes a share of the update stream and hands its partial round to the coordinator.

Scale-out with MQTT 5 shared subscriptions (``$share/{group}/.../update/+``): the broker gives each
update message to one member of the group. A worker follows the coordinator's retained RoundTask,
checks and logs the updates it receives exactly as the coordinator does (``UpdateIngest``: WAL before
Ack), reports each accepted client (``Progress``), and on the coordinator's ``CloseRequest`` freezes
the round and publishes its ``PartialRound`` (``Strategy.round_bytes()``). It never aggregates, so it
opens its rounds on zeros: the per-round state of every rule depends only on the updates.

Crash safety: the worker's own WAL and journal are in its ``--state-dir``; restarted, it replays the
retained task's round from its WAL, reports every client again, and answers the retained close request.
No global model and no registry are needed (``not_selected`` is reported for every unselected sender).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from fmfl.aggregation.strategy import Strategy
from fmfl.aggregator.core.ingest import SignatureCheck, UpdateIngest, Verdict
from fmfl.aggregator.core.intake import UpdateIntake, reassembler_for
from fmfl.aggregator.core.observer import RoundObserver
from fmfl.aggregator.core.outbound import Outgoing
from fmfl.aggregator.core.round_config import RoundConfig
from fmfl.aggregator.core.round_state import OpenRound
from fmfl.aggregator.durable.journal import JOURNAL_KEEP_ROUNDS, RoundJournal
from fmfl.aggregator.durable.wal import UpdateLog
from fmfl.aggregator.topology.messages import CloseRequest, GatewayTopics, PartialError, PartialRound, Progress
from fmfl.protocol import Limits, ProtocolError, RoundTask, Topics, split_message

log = logging.getLogger(__name__)


class WorkerEngine:
    """One worker's state machine (no MQTT inside; ``MqttGateway`` drives it like the coordinator)."""

    def __init__(
        self,
        *,
        config: RoundConfig,
        worker_id: str,
        bundle_id: str,
        size: int,
        make_strategy: Callable[[], Strategy],
        state_dir: str | Path,
        observer: RoundObserver | None = None,
        verifier: SignatureCheck | None = None,
    ) -> None:
        self.config = config
        self.worker_id = worker_id
        self.verifier = verifier  # signed updates: workers check them exactly as the coordinator does
        self.bundle_id = bundle_id
        self.size = size
        self.make_strategy = make_strategy
        self.topics = Topics(config.federation)
        self.gateway_topics = GatewayTopics(self.topics)
        self.gateway_topics.progress(worker_id)  # checks the id
        self.limits = Limits.for_vector_size(size)
        self.observer = observer or RoundObserver()
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.wal = UpdateLog(self.state_dir / "updates.sqlite")
        self.journal = RoundJournal(self.state_dir / "journal.sqlite")
        self.strategy = make_strategy()
        self.ingest = self._ingest_for(self.strategy)
        self.reassembler = reassembler_for(self.limits)
        self.intake = UpdateIntake(self.topics, self.reassembler, self.observer, config.max_packet_bytes)
        self.open_round: OpenRound | None = None
        self.frozen = False
        self.answered_seq: int | None = None
        self.finished = False  # a worker serves until it is stopped

    def _ingest_for(self, strategy: Strategy) -> UpdateIngest:
        return UpdateIngest(
            config=self.config,
            bundle_id=self.bundle_id,
            size=self.size,
            limits=self.limits,
            strategy=strategy,
            wal=self.wal,
            journal=self.journal,
            verifier=self.verifier,
        )

    def subscriptions(self, share_group: str | None) -> list[str]:
        updates = self.topics.all_updates
        if share_group:
            updates = Topics.shared(share_group, updates)
        return [self.topics.task, self.gateway_topics.close, self.gateway_topics.sync, updates]

    def start(self, now: float) -> list[Outgoing]:
        return []

    def tick(self, now: float) -> list[Outgoing]:
        return []

    # --- inputs ------------------------------------------------------------------------------------

    def handle_batch(self, messages: Sequence[tuple[str, bytes]], now: float) -> list[Outgoing]:
        """Messages that arrived together; their accepted updates share one write-ahead log commit, made
        before this returns (so the Acks and progress it returns may be published)."""
        out: list[Outgoing] = []
        ingest = self.ingest  # a task inside the batch replaces it; this one still commits its group
        with ingest.group():
            for topic, payload in messages:
                out += self.handle(topic, payload, now)
        return out

    def handle(self, topic: str, payload: bytes, now: float) -> list[Outgoing]:
        if not payload and topic != self.gateway_topics.sync:
            return []
        try:
            if topic == self.topics.task:
                data = self.reassembler.add(payload, source=topic)
                return [] if data is None else self._on_task(RoundTask.from_bytes(data, self.limits), now)
            if topic == self.gateway_topics.close:
                return self._on_close(CloseRequest.from_bytes(payload))
            if topic == self.gateway_topics.sync:
                return self._progress(self._held(), full=True)
        except (ProtocolError, PartialError) as exc:
            log.warning("ignored a bad message on %s: %s", topic, exc)
            return []
        try:
            kind, sender = self.topics.parse(topic)
        except ProtocolError:
            return []
        if kind != "update" or sender is None:
            return []
        accepting = None if self.frozen else self.open_round
        verdict = self.intake.receive(sender, topic, payload, self.ingest, accepting, self.open_round)
        return [] if verdict is None else self._verdict(sender, verdict)

    def _on_task(self, task: RoundTask, now: float) -> list[Outgoing]:
        if task.federation != self.config.federation or task.bundle_id != self.bundle_id:
            log.warning("ignored a task for another federation or bundle")
            return []
        if self.open_round is not None and task.round <= self.open_round.round:
            return []
        self.strategy = self.make_strategy()
        self.ingest = self._ingest_for(self.strategy)
        self.ingest.run = task.run  # the coordinator's run: the worker answers for it
        self.strategy.begin_round(np.zeros(self.size, dtype=np.float32))
        report = self.wal.replay(task.round, self.strategy)  # after a restart: this round's share
        self.wal.prune(before_round=task.round)
        self.journal.prune(before_round=task.round - JOURNAL_KEEP_ROUNDS)
        self.open_round = OpenRound(task, now, task.deadline)
        self.frozen = False
        log.info("worker %s: round %d (%d replayed)", self.worker_id, task.round, len(report.fed))
        return self._progress(self._held(), full=True)

    def _held(self) -> dict[str, str]:
        if self.open_round is None:
            return {}
        return {r.client_id: r.update_id for r in self.wal.records(self.open_round.round)}

    def _progress(self, clients: dict[str, str], *, full: bool = False) -> list[Outgoing]:
        if self.open_round is None:
            return []
        message = Progress(self.open_round.round, self.worker_id, clients, full)
        return [Outgoing(self.gateway_topics.progress(self.worker_id), message.to_bytes())]

    def _verdict(self, sender: str, verdict: Verdict) -> list[Outgoing]:
        run = self.open_round.task.run if self.open_round is not None else None  # the coordinator's run
        out = self.intake.answer(sender, verdict, self.open_round, run)
        if verdict.counted and verdict.update is not None:
            out += self._progress({verdict.update.client_id: verdict.update.update_id})
        return out

    def _on_close(self, request: CloseRequest) -> list[Outgoing]:
        current = self.open_round
        if current is None or request.round != current.round or request.seq == self.answered_seq:
            return []
        self.ingest.flush()  # the share holds durable updates only (handle_batch's open group)
        self.frozen = True  # from now on this round's updates are refused as no_open_round
        self.answered_seq = request.seq
        exclude = set(request.exclude.get(self.worker_id, ()))
        share = self.strategy
        if exclude & set(self.strategy.clients):
            # Another gateway holds these clients (a resend reached it too): rebuild without them.
            share = self.make_strategy()
            share.begin_round(np.zeros(self.size, dtype=np.float32))
            for rec in self.wal.records(current.round):
                if rec.client_id not in exclude:
                    share.accept(rec, rec.weight, rec.client_id)
        held = {c: u for c, u in self._held().items() if c in share.clients}
        rows = [r for r in self.journal.accepted(current.round) if r.client_id in held]
        partial = PartialRound(
            current.round,
            request.seq,
            self.worker_id,
            held,
            share.round_bytes(),
            rows,
            dict(current.counters),
        )
        log.info("worker %s: round %d share of %d update(s) sent", self.worker_id, current.round, len(held))
        topic = self.gateway_topics.partial(self.worker_id)
        return [Outgoing(topic, c) for c in split_message(partial.to_bytes(), self.config.max_packet_bytes)]

    def close(self) -> None:
        self.wal.close()
        self.journal.close()
