"""The round state machine of the gateway, with no MQTT inside.

Feed it what arrived (``handle(topic, payload, now)``) and the clock (``tick(now)``); it returns the
``Outgoing`` publishes and keeps every durable record itself. The MQTT adapter (``app/mqtt_gateway.py``)
is a thin loop around it; tests, the SIGKILL/resume checks and the 10,000-client benchmark drive it too.

Deployment modes are plug-ins (``modes.py``): how the round closes (``LocalClosing``, or ``WorkerClosing``
across workers) and where rounds come from and go (``LocalRun``, or ``ParentTier`` for a lower tier).

States: waiting for ``min_clients`` eligible devices -> round r open -> closed (new version saved)
or failed -> next round ... -> finished once the global version reaches ``rounds``.

On disk, in ``state_dir``: ``models/`` (``GlobalStore``: every global version with the strategy's
server state), ``updates.sqlite`` (``UpdateLog``: the write-ahead log of the open round's accepted
updates, fsynced before their Acks; ``handle_batch`` commits the updates that arrived together at
once), ``journal.sqlite`` (``RoundJournal``: tasks, counters, client metrics, the registry) and
``metrics.jsonl`` (one line per round). See docs/aggregator.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from fmfl.aggregation.sparse import Float32Array
from fmfl.aggregation.strategy import Strategy
from fmfl.aggregator.core.clients import ClientRegistry, select_clients
from fmfl.aggregator.core.downlink import DownlinkCompressor
from fmfl.aggregator.core.ingest import SignatureCheck, UpdateIngest, Verdict
from fmfl.aggregator.core.intake import UpdateIntake, reassembler_for
from fmfl.aggregator.core.modes import LocalClosing, LocalRun, RoundClosing, RoundSource
from fmfl.aggregator.core.observer import RoundObserver
from fmfl.aggregator.core.outbound import (
    Outgoing,
    clear_stale_chunks,
    clear_task,
    fit_selection,
    global_delta_packets,
    global_model_packets,
    task_packets,
)
from fmfl.aggregator.core.round_config import RoundConfig
from fmfl.aggregator.core.round_state import OpenRound
from fmfl.aggregator.durable.journal import JOURNAL_KEEP_ROUNDS, AcceptedRow, JournalStatus, RoundJournal
from fmfl.aggregator.durable.round_report import MetricsLog, RoundStatus, RoundSummary, by_device_kind, mean_metrics
from fmfl.aggregator.durable.run_identity import PriorRun
from fmfl.aggregator.durable.store import GlobalStore
from fmfl.aggregator.durable.wal import UpdateLog
from fmfl.aggregator.topology.coordinator import WorkerClosing, WorkerPool
from fmfl.aggregator.topology.messages import GatewayTopics, PartialError
from fmfl.aggregator.topology.parent import ParentTier
from fmfl.aggregator.topology.tier import UpstreamConfig, UpstreamTier
from fmfl.errors import FmflError
from fmfl.failpoints import failpoint
from fmfl.protocol import (
    ClientHello,
    ClientStatus,
    Limits,
    ProtocolError,
    RoundTask,
    Topics,
)
from fmfl.protocol.downlink import weights_sha256

log = logging.getLogger(__name__)

# After a restart the broker first delivers what queued while we were down; a round whose deadline
# passed meanwhile stays open this long so those updates still count.
RESUME_GRACE_S = 5.0


class StartTimeout(FmflError):
    """Too few eligible clients came online in time to open a round."""


class RunFailed(FmflError):
    """Too many rounds in a row failed their quorum."""


class RoundEngine:
    """Runs rounds over ``strategy`` for the bundle ``bundle_id`` with ``initial_weights`` as version 0."""

    def __init__(
        self,
        *,
        config: RoundConfig,
        bundle_id: str,
        initial_weights: Float32Array,
        strategy: Strategy,
        state_dir: str | Path,
        resume: bool = False,
        observer: RoundObserver | None = None,
        now: float | None = None,
        reassembly_bytes: int | None = None,
        workers: tuple[str, ...] = (),
        partial_timeout: float = 30.0,
        upstream: UpstreamConfig | None = None,
        verifier: SignatureCheck | None = None,
        prior: PriorRun | Callable[[], PriorRun] | None = None,
    ) -> None:
        """``prior``: what earlier runs left retained on the broker, or how to read it
        (``run_identity.read_prior_run``), called only when a new run starts, after every other check;
        a new run continues their round and version numbers and clears their retained topics."""
        if (workers or upstream is not None) and not strategy.supports_partial_rounds:
            raise FmflError(f"--strategy {strategy.name} cannot split rounds: drop --workers / --upstream-federation")
        self.config = config
        self.bundle_id = bundle_id
        self.strategy = strategy
        self.size = int(initial_weights.shape[0])
        self.topics = Topics(config.federation)
        self.limits = Limits.for_vector_size(self.size)
        self.observer = observer or RoundObserver()
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.store = GlobalStore(self.state_dir / "models")
        self.wal = UpdateLog(self.state_dir / "updates.sqlite")
        self.journal = RoundJournal(self.state_dir / "journal.sqlite")
        self.metrics_log = MetricsLog(self.state_dir / "metrics.jsonl")
        self.registry = ClientRegistry(bundle_id, config.requirements)
        self.closing: RoundClosing = (
            WorkerClosing(WorkerPool(workers, GatewayTopics(self.topics), partial_timeout=partial_timeout))
            if workers
            else LocalClosing()
        )
        self.source: RoundSource = LocalRun(config.rounds)
        if upstream is not None:
            if upstream.federation == config.federation:
                raise FmflError("the upstream federation must differ from this gateway's --federation")
            tier = UpstreamTier(upstream, bundle_id=bundle_id, size=self.size, state_dir=self.state_dir,
                                max_packet_bytes=config.max_packet_bytes)
            self.source = ParentTier(tier, strategy, self.limits)
        self.ingest = UpdateIngest(
            config=config,
            bundle_id=bundle_id,
            size=self.size,
            limits=self.limits,
            strategy=strategy,
            wal=self.wal,
            journal=self.journal,
            is_known=lambda client_id: self.registry.get(client_id) is not None,
            held_elsewhere=self.closing.holder,
            verifier=verifier,  # signed updates (fmfl.trust.SignatureCheck), None: not required
        )
        self.reassembler = reassembler_for(self.limits, reassembly_bytes=reassembly_bytes)
        self.intake = UpdateIntake(self.topics, self.reassembler, self.observer, config.max_packet_bytes)
        self.open_round: OpenRound | None = None
        self.failed_in_a_row = 0
        self.bad_messages: dict[str, int] = {}
        self._published_version: int | None = None
        self._published_chunks = 0
        self._published_delta_chunks = 0
        # Downlink deltas (docs/protocol.md 2b): every version is what devices rebuild from its delta.
        self.downlink = DownlinkCompressor(config.downlink_codec, self.size)
        self._model_cache: tuple[int, list[Outgoing], list[Outgoing]] | None = None
        self._quorum_since: float | None = None
        self._opened_any = False
        self._waiting_since = time.time() if now is None else now
        self._read_prior = prior if callable(prior) else (lambda: prior or PriorRun())
        self.prior = PriorRun()
        self._clear_prior_task = False
        self._acks_after_commit = 0  # counted updates of the open group: their Acks wait for its commit
        self.run = 0
        self.first_version = 0
        self.weights, self.version = self._load(initial_weights, resume, self._waiting_since)
        self.ingest.run = self.run

    # --- start-up ----------------------------------------------------------------------------------

    def _load(self, initial: Float32Array, resume: bool, now: float) -> tuple[Float32Array, int]:
        identity = {"bundle_id": self.bundle_id, "federation": self.config.federation, "size": self.size}
        latest = self.store.latest()
        if latest is None:
            # A new run: newer than any run the broker remembers, its rounds and versions after theirs.
            self.prior = self._read_prior()
            self._clear_prior_task = self.prior.task_retained
            self._published_chunks = max(self.prior.chunk_topics, default=-1) + 1
            self._published_delta_chunks = max(self.prior.delta_topics, default=-1) + 1
            self.run, self.first_version = self.prior.new_run_id(now), self.prior.first_version
            self.journal.put("identity", identity)
            self.journal.put("run", {"run": self.run, "first_version": self.first_version})
            if self.prior.first_round > 1:
                self.journal.put("next_round", self.prior.first_round)
            self.store.save(self.first_version, initial, server_state=self.strategy.state_dict())
            log.info("run %d starts at round %d, version %d", self.run, self.prior.first_round, self.first_version)
            return initial.astype("float32", copy=True), self.first_version
        if not resume:
            raise FmflError(
                f"{self.state_dir} already holds a run (global version {latest.version}); "
                "pass --resume to continue it or choose an empty --state-dir"
            )
        saved = self.journal.get("identity")
        if saved != identity:
            raise FmflError(f"{self.state_dir} holds a run of {saved}, not of {identity}; use another --state-dir")
        run = self.journal.get("run")
        if run is None:  # a state folder from before protocol 1.2: it gets its run id now, kept from here on
            run = {"run": int(now * 1000), "first_version": min(v.version for v in self.store.versions())}
            self.journal.put("run", run)
        self.run, self.first_version = int(run["run"]), int(run["first_version"])
        entry, weights = self.store.load_weights()
        # The saved delta and residual come back too: a resume republishes the same delta.
        self.strategy.load_state_dict(self.downlink.load_state(self.store.load_state(entry.version), entry.version,
                                                               weights))
        for record in self.journal.clients():
            # Online flags are re-learned from the retained status messages after reconnecting.
            record.online = False
            self.registry.restore(record)
        self.weights, self.version = weights, entry.version
        self._recover_round(now=time.time())
        return weights, entry.version

    def _recover_round(self, now: float) -> None:
        """Continue the journal's open round, or finish the bookkeeping of one closed mid-way."""
        last = self.journal.last_round()
        if last is None or last.status != JournalStatus.OPEN:
            self.wal.prune(before_round=self.journal.next_round())
            return
        task = RoundTask.from_bytes(last.task, self.limits)
        if task.model_version < self.version:
            # Crashed after saving the new version: write the lost metrics line, mark it closed.
            rows = self.journal.accepted(task.round)
            if task.round not in self.metrics_log.rounds_logged():
                self.metrics_log.append(
                    self._summary(
                        OpenRound(task, last.opened, task.deadline, dict(last.counters)),
                        RoundStatus.OK,
                        self.version,
                        len(rows),
                        now,
                        detail="recovered after restart",
                    )
                )
            self.journal.finish_round(task.round, JournalStatus.CLOSED, last.counters)
            self.wal.prune(before_round=task.round + 1)
            return
        self.strategy.begin_round(self.weights)
        report = self.wal.replay(task.round, self.strategy)
        self._journal_replayed(task.round, report.fed, last.counters)
        if report.rejected:
            log.warning(
                "round %d: %d logged updates no longer pass validation: %s",
                task.round,
                len(report.rejected),
                report.rejected[:5],
            )
        self.open_round = OpenRound(task, last.opened, max(task.deadline, now + RESUME_GRACE_S), dict(last.counters))
        self._opened_any = True
        self.closing.resume(task.round)
        log.info(
            "resumed round %d on version %d with %d logged updates",
            task.round,
            task.model_version,
            len(report.fed),
        )

    def _journal_replayed(self, round_no: int, fed: list[str], counters: dict[str, int]) -> None:
        """Journal the replayed updates the journal lacks: a kill between the WAL append and the journal
        row (the failpoint ``aggregator.after_wal_append``) leaves an update folded in but unjournaled,
        so the round's metrics line would miss it and, once the WAL is pruned, a resend would be refused
        as ``stale_round`` although it was counted. The WAL holds no metrics; the weight stands in for
        ``num_samples`` (they are equal except for async late updates, whose weight is discounted)."""
        journaled = {row.update_id for row in self.journal.accepted(round_no)}
        missing = set(fed) - journaled
        for rec in self.wal.records(round_no):
            if rec.update_id in missing:
                row = AcceptedRow(rec.update_id, round_no, rec.client_id, round_no, 0, round(rec.weight), {},
                                  nonce=rec.nonce)  # the replay check outlives the WAL's pruning
                self.journal.record_accepted(row, counters)

    def subscriptions(self, share_group: str | None) -> list[str]:
        """Topic filters to subscribe to (QoS 1); with ``share_group`` updates are shared with workers."""
        updates = self.topics.all_updates
        if share_group:
            updates = Topics.shared(share_group, updates)
        return [self.topics.all_hellos, self.topics.all_status, updates, *self.closing.subscriptions(),
                *self.source.subscriptions()]

    def will(self) -> tuple[str, bytes] | None:
        """The MQTT will to connect with: a lower tier is a device to its parent."""
        return self.source.will()

    def start(self, now: float) -> list[Outgoing]:
        """What to publish on (re)connecting: the current global model, and the open round's task.

        A new run first clears an earlier run's retained task (it may select devices, its deadline still
        ahead); the model's publish clears the earlier run's surplus chunk topics.
        """
        # Again on every reconnect: a broker killed before saving its retained copies has lost them.
        self._published_version = None
        out = []
        if self._clear_prior_task and self.open_round is None:
            out.append(clear_task(self.topics))
        self._clear_prior_task = False
        out += self._global_packets() + self.source.start()
        if self.open_round is not None:
            out += task_packets(self.topics, self.open_round.task, self.config.max_packet_bytes)
            out += self.closing.reconnect()
        self._waiting_since = now
        return self._sent(out)

    # --- inputs ------------------------------------------------------------------------------------

    def handle_batch(self, messages: Sequence[tuple[str, bytes]], now: float) -> list[Outgoing]:
        """``(topic, payload)`` messages that arrived together, handled in order; their accepted updates
        share one write-ahead log commit (group commit: one fsync instead of one per update).

        Returns only after that commit is durable, so everything returned, the Acks included, may be
        published at once. A round that reaches its quorum inside the batch is closed on its own commit.
        """
        out: list[Outgoing] = []
        with self.ingest.group():
            for topic, payload in messages:
                out += self.handle(topic, payload, now)
        held, self._acks_after_commit = self._acks_after_commit, 0
        for _ in range(held):
            failpoint("aggregator.before_ack")  # logged and journaled, the Ack not sent
        return out

    def handle(self, topic: str, payload: bytes, now: float) -> list[Outgoing]:
        """One MQTT message (one chunk) on one of our topics; returns what to publish in answer."""
        if self.source.owns(topic):
            return self.source.handle(topic, payload) + self.tick(now)
        if self.closing.owns(topic):
            return self._on_peer_message(topic, payload, now)
        try:
            kind, sender = self.topics.parse(topic)
        except ProtocolError:
            self._bad("topic")
            return []
        if not payload or sender is None or kind not in ("hello", "status", "update"):
            return []  # a cleared retained message, or not a device's message to the gateway
        if kind == "update":
            accepting = None if self.closing.in_progress else self.open_round
            verdict = self.intake.receive(sender, topic, payload, self.ingest, accepting, self.open_round)
            return [] if verdict is None else self._verdict(sender, verdict, now)
        try:
            data = self.reassembler.add(payload, source=topic)
        except ProtocolError as exc:
            self._bad(exc.reason.value)
            return []
        if data is None:
            return []
        try:
            if kind == "hello":
                self._on_hello(sender, ClientHello.from_bytes(data, self.limits))
            else:
                self._on_status(sender, ClientStatus.from_bytes(data, self.limits))
        except ProtocolError as exc:
            self._bad(exc.reason.value)
        return []

    def _on_hello(self, sender: str, hello: ClientHello) -> None:
        if hello.client_id != sender:
            self._bad("client_mismatch")
            return
        self.journal.save_client(self.registry.on_hello(hello))
        self.observer.clients_online(self.registry.online_count)

    def _on_status(self, sender: str, status: ClientStatus) -> None:
        if status.client_id != sender:
            self._bad("client_mismatch")
            return
        self.journal.save_client(self.registry.on_status(sender, status.online))
        self.observer.clients_online(self.registry.online_count)

    def _on_peer_message(self, topic: str, payload: bytes, now: float) -> list[Outgoing]:
        """A message of the nodes the round closes with (workers' progress and partial sums)."""
        try:
            out = self.closing.on_message(topic, payload, self.strategy, self.reassembler, self.open_round is not None)
        except (PartialError, ProtocolError, FmflError) as exc:
            self._bad("worker_message")
            log.warning("bad message from a worker on %s: %s", topic, exc)
            return []
        return out + self.tick(now)

    def _bad(self, reason: str) -> None:
        self.bad_messages[reason] = self.bad_messages.get(reason, 0) + 1
        log.warning("dropped a malformed message (%s)", reason)

    def _verdict(self, sender: str, verdict: Verdict, now: float) -> list[Outgoing]:
        if verdict.counted and verdict.ack_target is not None:
            if self.ingest.grouped:
                self._acks_after_commit += 1  # handle_batch passes the failpoint below after the commit
            else:
                failpoint("aggregator.before_ack")  # logged and journaled, the Ack not yet sent
        out = self._sent(self.intake.answer(sender, verdict, self.open_round, self.run))
        if verdict.counted:
            out += self.tick(now)
        return out

    # --- the clock ---------------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        """All rounds done (a lower tier serves its parent until stopped)."""
        return self.source.finished(self.version - self.first_version)

    def tick(self, now: float) -> list[Outgoing]:
        """Close the round at quorum K or its deadline; open the next when enough clients are online."""
        current = self.open_round
        if current is not None:
            waiting = self._until_closed(current, now)
            if waiting is not None:
                return waiting
        out = self._close(current, now) if current is not None else []
        if self.finished:
            return out
        poll = self.source.poll(now)
        out += poll.out
        if not poll.may_open:
            self._waiting_since = now  # waiting for the parent is not waiting for devices
            return out
        if poll.adopt is not None:
            self._adopt(*poll.adopt)
        return out + self._maybe_open(now)

    def _until_closed(self, current: OpenRound, now: float) -> list[Outgoing] | None:
        """``None`` when ``current`` closes now; else what to publish while it stays open."""
        if self.closing.in_progress:
            return None if self.closing.done(now) else []
        # Quorum K, or every selected device when fewer than K could be selected (a small fleet must not
        # wait for the deadline for updates nobody was asked for).
        target = min(self.config.clients_per_round, len(current.task.selected))
        if self.closing.accepted(self.strategy) < target and now < current.close_at:
            return []
        self.ingest.flush()  # what is counted is durable before any node stops accepting
        requests = self.closing.request_close(current.round, now)
        return None if requests is None else self._sent(requests)  # closes when the peers' shares are in

    def _maybe_open(self, now: float) -> list[Outgoing]:
        """Open the next round when enough eligible devices are online; give up after ``start_timeout``."""
        eligible = self.registry.eligible()
        if len(eligible) >= self.config.selection_size:
            return self._open(eligible, now)
        if len(eligible) >= self.config.min_clients:
            # Quorum but not a full selection: at start-up, wait a short window for more devices to check
            # in rather than run the first round with the first M that connected. Later rounds start at
            # once: the registry is populated by then.
            if self._quorum_since is None:
                self._quorum_since = now
            if self._opened_any or now - self._quorum_since >= self.config.selection_window:
                return self._open(eligible, now)
            return []
        self._quorum_since = None
        if now - self._waiting_since > self.config.start_timeout:
            raise StartTimeout(
                f"only {len(eligible)} eligible client(s) online after {self.config.start_timeout:.0f} s; "
                f"--min-clients is {self.config.min_clients} ({len(self.registry)} known, "
                f"{self.registry.online_count} online)"
            )
        return []

    def _adopt(self, task: RoundTask, weights: Float32Array) -> None:
        """A lower tier trains the parent's model of the parent's task."""
        if task.model_version != self.version:
            latest = self.store.latest()
            if latest is None or task.model_version > latest.version:
                self.store.save(task.model_version, weights, server_state=self.strategy.state_dict())
            self.weights, self.version = weights, task.model_version
            self.downlink.forget()  # the parent's version: no delta of ours leads to it

    def _open(self, eligible: list[str], now: float) -> list[Outgoing]:
        cfg = self.config
        r = self.journal.next_round()
        selected = select_clients(eligible, cfg.selection_size, seed=cfg.seed, round=r)
        task = RoundTask(
            federation=cfg.federation,
            bundle_id=self.bundle_id,
            round=r,
            model_version=self.version,
            selected=selected,
            batch_size=cfg.batch_size,
            lr=cfg.lr,
            codec=cfg.codec_for_round(r),
            deadline=now + cfg.round_timeout,
            seed=cfg.task_seed(r),
            local_steps=cfg.local_steps,
            local_epochs=cfg.local_epochs,
            run=self.run,
        )
        task = fit_selection(task, eligible, seed=cfg.seed, max_packet_bytes=cfg.max_packet_bytes)
        selected = task.selected
        out = self._global_packets() + task_packets(self.topics, task, cfg.max_packet_bytes)
        self.strategy.begin_round(self.weights)
        self.journal.open_round(r, task.to_bytes(), now)
        failpoint("aggregator.round_opened")  # journaled, the task not yet published
        self.open_round = OpenRound(task, now, task.deadline)
        self._opened_any = True
        self.source.begin(self.journal)
        out += self.closing.begin(r)
        self._quorum_since = None
        self.observer.round_started(r, self.version, len(selected))
        log.info("round %d opened on version %d, %d selected", r, self.version, len(selected))
        return self._sent(out)

    def _close(self, current: OpenRound, now: float) -> list[Outgoing]:
        # A round closes on durable updates only: commit the open group (handle_batch) first.
        self.ingest.flush()
        self.closing.merge_into(self.journal, current)
        accepted = len(self.strategy.clients)
        self.open_round = None
        self._waiting_since = now
        if accepted >= self.config.min_clients and not self.source.makes_versions:
            return self._forward(current, accepted, now)
        if accepted >= self.config.min_clients:
            version = current.version + 1
            # Re-based: the version is the previous one plus what its delta decodes to (protocol.md 2b).
            new = self.downlink.rebase(self.weights, current.version, self.strategy.aggregate())
            failpoint("aggregator.before_save_version")
            # Order matters for crash safety: the version first (the WAL still holds the round),
            # then the metrics line, the journal, and only then the log is pruned.
            self.store.save(version, new, server_state={**self.strategy.state_dict(), **self.downlink.state_dict()})
            failpoint("aggregator.after_save_version")
            summary = self._summary(current, RoundStatus.OK, version, accepted, now, model=new)
            self.metrics_log.append(summary)
            failpoint("aggregator.after_metrics")
            self.journal.finish_round(current.round, JournalStatus.CLOSED, current.counters)
            failpoint("aggregator.after_journal")
            self.wal.prune(before_round=current.round + 1)
            self.journal.prune(before_round=current.round - JOURNAL_KEEP_ROUNDS)
            failpoint("aggregator.round_closed")  # all bookkeeping done, the new model not yet published
            self.weights, self.version = new, version
            self.failed_in_a_row = 0
            self.observer.round_closed(summary)
            return self._sent(self._global_packets()) if self.finished else []
        detail = f"{accepted} accepted < --min-clients {self.config.min_clients}"
        summary = self._summary(current, RoundStatus.FAILED, current.version, accepted, now, detail=detail)
        self.metrics_log.append(summary)
        self.journal.finish_round(current.round, JournalStatus.FAILED, current.counters)
        self.journal.forget_accepted(current.round)
        self.wal.prune(before_round=current.round + 1)
        self.observer.round_closed(summary)
        self.failed_in_a_row += 1
        if self.failed_in_a_row >= self.config.max_failed_rounds:
            raise RunFailed(f"{self.failed_in_a_row} rounds in a row failed their quorum ({detail})")
        return []

    def _forward(self, current: OpenRound, accepted: int, now: float) -> list[Outgoing]:
        """Lower tier: the round's weighted sum goes to the parent as one update; no local version."""
        assert isinstance(self.source, ParentTier)
        parent = self.source.parent_task(self.journal)
        summary = self._summary(current, RoundStatus.FORWARDED, current.version, accepted, now,
                                detail=f"parent round {parent.round}")
        out = self.source.forward(parent, self.strategy, summary.metrics)
        self.metrics_log.append(summary)
        self.journal.finish_round(current.round, JournalStatus.CLOSED, current.counters)
        self.wal.prune(before_round=current.round + 1)
        self.journal.prune(before_round=current.round - JOURNAL_KEEP_ROUNDS)
        self.failed_in_a_row = 0
        self.observer.round_closed(summary)
        return self._sent(out)

    def _summary(
        self,
        current: OpenRound,
        status: RoundStatus,
        version: int,
        accepted: int,
        now: float,
        detail: str = "",
        model: Float32Array | None = None,
    ) -> RoundSummary:
        """``model``: the weights of the version the round made, whose downlink sizes the line records."""
        rows = self.journal.accepted(current.round)
        by_kind, bytes_by_kind = by_device_kind(rows, self.registry.device_kind)
        return RoundSummary(
            round=current.round,
            version=version,
            status=status,
            participants=accepted,
            selected=len(current.task.selected),
            rejected_by_reason=current.rejected_by_reason(),
            bytes_up=current.tally().bytes_up,
            bytes_down=current.tally().bytes_down,
            metrics=mean_metrics(rows),
            duration_s=max(0.0, now - current.opened),
            strategy=self.strategy.name,
            codec=current.task.codec,
            late_updates=current.tally().late,
            detail=detail,
            extra={**self.strategy.round_metrics(), **self._downlink_bytes(version, model)},
            participants_by_kind=by_kind,
            bytes_up_by_kind=bytes_by_kind,
        )

    def _downlink_bytes(self, version: int, model: Float32Array | None) -> dict[str, float]:
        """One copy of each form of ``version`` as published: what a device on deltas and a device taking
        the dense model each receive for it (docs/protocol.md 2b, "Bytes")."""
        if model is None:
            return {}
        delta, dense = self._model_packets(version, model)
        return {"downlink_delta_bytes": sum(len(o.payload) for o in delta),
                "downlink_dense_bytes": sum(len(o.payload) for o in dense)}

    # --- outputs -----------------------------------------------------------------------------------

    def _global_packets(self) -> list[Outgoing]:
        """The delta (when this version has one) before the dense model; each clears its surplus topics."""
        if self._published_version == self.version:
            return []
        delta, dense = self._model_packets(self.version, self.weights)
        out = delta + clear_stale_chunks(self.topics, len(delta), self._published_delta_chunks, delta=True)
        out += dense + clear_stale_chunks(self.topics, len(dense), self._published_chunks)
        self._published_version, self._published_chunks = self.version, len(dense)
        self._published_delta_chunks = len(delta)
        return out

    def _model_packets(self, version: int, weights: Float32Array) -> tuple[list[Outgoing], list[Outgoing]]:
        """``(delta chunks, dense chunks)`` of ``version`` (no delta chunks when it has none), built once."""
        if self._model_cache is not None and self._model_cache[0] == version:
            return self._model_cache[1], self._model_cache[2]
        limit, delta = self.config.max_packet_bytes, self.downlink.delta
        if delta is not None and delta.model_version == version:
            digest = delta.weights_sha256
            delta_out = global_delta_packets(self.topics, self.bundle_id, delta, limit, run=self.run)
        else:
            digest, delta_out = weights_sha256(weights), []
        dense = global_model_packets(
            self.topics, self.bundle_id, version, weights, limit, run=self.run, weights_sha256=digest,
            deltas=self.downlink.enabled,
        )
        self._model_cache = (version, delta_out, dense)
        return delta_out, dense

    def _sent(self, out: list[Outgoing]) -> list[Outgoing]:
        nbytes = sum(len(o.payload) for o in out)
        if self.open_round is not None:
            self.open_round.count("bytes_down", nbytes)
        self.observer.bytes_out(nbytes)
        return out

    def close(self) -> None:
        """Release the files; the state on disk is complete at every point, so no flush is needed."""
        if self.open_round is not None:
            self.journal.save_counters(self.open_round.round, self.open_round.counters)
        self.wal.close()
        self.journal.close()
