"""One device's side of protocol 1.2 as a state machine without a transport (sans-IO).

Inputs are ``(topic, payload, now)`` and the clock; outputs are publishes (``Outgoing``) and one question
the owner answers outside: "train this task on this model" (``ready`` / ``take``). Three owners drive it:
the edge client's runner (trains with ``EdgeDevice.run_round``), a lower-tier gateway towards its parent
(``aggregator/topology/tier.py``: its round is the local federation's) and the tests' simulated devices.
So the three agree on what docs/protocol.md asks of a device:

- connect (section 2): the will is ClientStatus ``online = false`` (retained); after subscribing, ClientStatus
  ``online = true`` (retained), then the ClientHello (retained, as 1.2 says), then every unacknowledged update;
- runs (2a): follow the newest run seen on a task or a model; an older run's leftovers are dropped unread;
- global models (2b): dense or delta through ``ModelFeed``, which says when ``global/+`` is wanted;
- tasks: for this bundle, selecting this device, a round it has not answered, before the deadline, and only
  once the held model is the task's version (of the task's run, when both name one);
- Acks (section 8): every Ack for a pending update is final (the outbox drops it); ``unknown_client`` also
  sends the hello again; any other reason is logged with the update;
- resends: whatever is unacknowledged goes out again ``resend_after`` seconds after the last send, and on
  every (re)connect; the gateway counts an update id once.

The held model and the outbox are the owner's (``ModelHolder``, ``Outbox``): an edge device keeps both in
its crash-safe state folder, a lower tier keeps the model in memory and its one pending update in a file.
Nothing here imports ONNX Runtime, torch or paho.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from fmfl.edge_client.model_feed import ModelFeed, ModelHolder
from fmfl.protocol import (
    Ack,
    AckReason,
    ClientHello,
    ClientStatus,
    GlobalModel,
    Limits,
    ProtocolError,
    Reassembler,
    RoundTask,
    Topics,
    split_message,
)
from fmfl.protocol.chunking import chunk_run
from fmfl.protocol.framing import is_compact
from fmfl.protocol.outgoing import Outgoing

log = logging.getLogger(__name__)


class PendingUpdate(Protocol):
    """One unacknowledged update in an outbox."""

    @property
    def round(self) -> int: ...

    @property
    def update_id(self) -> str: ...

    @property
    def message(self) -> bytes: ...


class Outbox(Protocol):
    """The device's committed updates: what is unacknowledged, and the last round it answered."""

    @property
    def last_round(self) -> int: ...

    def pending(self) -> Sequence[PendingUpdate]: ...

    def acknowledge(self, update_id: str) -> bool: ...


@dataclass(frozen=True)
class SessionConfig:
    federation: str
    client_id: str
    bundle_id: str
    max_packet_bytes: int
    #: send unacknowledged updates again after this many seconds without an Ack (and on every reconnect)
    resend_after: float
    capabilities: dict[str, Any] = field(default_factory=dict)  # the hello's (ClientHello checks them)
    #: take downlink deltas (hold ``delta/+``; ``global/+`` only while a whole model is needed, section 2b);
    #: without, ``global/+`` is held for good and a delta is never asked for
    downlink_deltas: bool = True


class DeviceSession:
    """The device side of one federation (one thread drives it: the owner's loop)."""

    def __init__(
        self,
        config: SessionConfig,
        model: ModelHolder,
        outbox: Outbox,
        limits: Limits,
        *,
        counter_path: Path | None = None,
        on_ack: Callable[[Ack], None] | None = None,
        reassembler: Reassembler | None = None,
    ) -> None:
        self.config = config
        self.client_id = config.client_id
        self.topics = Topics(config.federation)
        self.model = model
        self.outbox = outbox
        self.limits = limits
        self.feed = ModelFeed(model, limits, counter_path)
        self.reassembler = reassembler or Reassembler(max_total_bytes=limits.max_message_bytes, max_pending_messages=4)
        self.followed_run = 0  # the newest run seen on a task or model (0: none yet, or a 1.1 gateway)
        self._task: RoundTask | None = None  # the newest task of the followed run for this bundle
        self._last_sent: float | None = None  # when updates last went out (None: never in this session)
        self._ack_observer = on_ack

    # -- MQTT surface -------------------------------------------------------------------------------------
    def subscriptions(self) -> list[str]:
        """What to hold for the whole connection (``global/+`` comes and goes with ``wants_dense`` when the
        session takes deltas). ``delta/+`` before the task, so a retained delta lands before the retained task
        that names its version."""
        t = self.topics
        if self.config.downlink_deltas:
            return [t.global_delta, t.task, t.ack(self.client_id)]
        return [t.task, t.global_model, t.ack(self.client_id)]

    @property
    def wants_dense(self) -> bool:
        """Whether ``global/+`` should be held now (always, without downlink deltas)."""
        return self.feed.wants_dense or not self.config.downlink_deltas

    def will(self) -> tuple[str, bytes]:
        """The MQTT will: ClientStatus ``online = false``, one chunk (also the clean-shutdown notice)."""
        return self.topics.status(self.client_id), self._offline()

    def goodbye(self) -> Outgoing:
        """What a clean shutdown publishes itself (the will's bytes, retained)."""
        return Outgoing(self.topics.status(self.client_id), self._offline(), retain=True)

    def _offline(self) -> bytes:
        return split_message(ClientStatus(self.client_id, online=False).to_bytes())[0]

    # -- inputs -------------------------------------------------------------------------------------------
    def connected(self, now: float) -> list[Outgoing]:
        """(Re)connected and subscribed: online status, hello, then every unacknowledged update."""
        self.feed.reset()
        status = ClientStatus(self.client_id, online=True).to_bytes()
        out = self._packets(self.topics.status(self.client_id), status, retain=True)
        out += self.hello()
        return out + self._resend_all(now)

    def hello(self) -> list[Outgoing]:
        """The ClientHello, retained (docs/protocol.md section 2: a gateway that starts later still learns of us)."""
        version, _ = self.model.global_model()
        hello = ClientHello(self.client_id, dict(self.config.capabilities), self.config.bundle_id,
                            version if version >= 0 else None)  # fmt: skip
        return self._packets(self.topics.hello(self.client_id), hello.to_bytes(), retain=True)

    def handle(self, topic: str, payload: bytes, now: float) -> list[Outgoing]:
        """One MQTT message (a chunk or a bare frame) on a subscribed topic."""
        if not payload:
            return []  # a cleared retained message (section 2)
        try:
            kind, _ = self.topics.parse(topic)
            self.feed.counter.received(kind, len(payload))
            hint = chunk_run(payload)
            if hint is not None and hint < self.followed_run:
                return []  # an older run's leftover (e.g. a surplus retained chunk): never buffered
            message = self.reassembler.add(payload, source=kind)
            if message is None:
                return []
            if kind == "task":
                self._on_task(RoundTask.from_bytes(message, self.limits))
            elif kind in ("global", "delta"):
                self._on_model(GlobalModel.from_bytes(message, self.limits))
            elif kind == "ack":
                return self._on_ack(Ack.from_bytes(message, self.limits))
        except ProtocolError as exc:
            log.warning("ignored a bad message on %s: %s", topic, exc)
        return []

    def tick(self, now: float) -> list[Outgoing]:
        """Unacknowledged updates again, ``resend_after`` seconds after the last send.

        A gateway killed while an update's chunks arrive has acknowledged the first chunks to the broker,
        so the broker's redelivery cannot complete the update; without this the device, still connected,
        would wait for an Ack that never comes (found by tests/faults). The gateway counts an id once.
        """
        if self._last_sent is None or now - self._last_sent < self.config.resend_after:
            return []
        pending = self.outbox.pending()
        if not pending:
            self._last_sent = None
            return []
        return self._resend_all(now, f"no Ack after {self.config.resend_after:.0f} s: ")

    # -- the round ----------------------------------------------------------------------------------------
    def ready(self, now: float) -> tuple[RoundTask, np.ndarray] | None:
        """The task to train now and the model to train it on, or None (nothing to do yet)."""
        task = self._task
        if task is None or self.client_id not in task.selected or task.round <= self.outbox.last_round:
            return None
        if task.deadline < now:
            log.info("round %d: its deadline passed before it could start: skipped", task.round)
            self._task = None
            return None
        version, weights = self.model.global_model()
        held_run = self.model.state.model_run
        if version != task.model_version:
            return None  # the task's global model has not arrived yet
        if task.run is not None and held_run is not None and held_run != task.run:
            return None  # the same version number of another run: its own model is on the way (2a)
        return task, weights

    def take(self, now: float) -> tuple[RoundTask, np.ndarray] | None:
        """``ready``, and the task is this session's no more (a round that fails is not retried)."""
        ready = self.ready(now)
        if ready is not None:
            self._task = None
        return ready

    def upload(self, message: bytes, now: float) -> list[Outgoing]:
        """A fresh update's packets; the owner has committed it to its outbox (the resend source) first."""
        self._last_sent = now
        return self._update_packets(message)

    # -- internals ----------------------------------------------------------------------------------------
    def _follow(self, run: int | None, what: str) -> bool:
        """False for a message of a run older than the one followed; adopts a newer run."""
        if run is None:
            return True
        if run < self.followed_run:
            log.info("ignored %s of run %d: following run %d", what, run, self.followed_run)
            return False
        if run > self.followed_run:
            if self.followed_run:
                log.info("a new run %d replaces run %d", run, self.followed_run)
            self.followed_run = run
            self.feed.new_run()
            if self._task is not None and self._task.run != run:
                self._task = None  # the old run's task will never be aggregated
        return True

    def _on_task(self, task: RoundTask) -> None:
        if not self._follow(task.run, f"round {task.round}'s task"):
            return
        if task.bundle_id != self.config.bundle_id:
            log.warning("round task for bundle %s, this device holds %s: ignored",
                        task.bundle_id, self.config.bundle_id)
            return
        self.feed.on_task(task)
        self._task = task

    def _on_model(self, model: GlobalModel) -> None:
        if not self._follow(model.run, f"global model v{model.model_version}"):
            return
        if model.bundle_id != self.config.bundle_id:
            return
        self.feed.on_model(model)  # a delta or the dense model (docs/protocol.md 2b)

    def _on_ack(self, ack: Ack) -> list[Outgoing]:
        if ack.client_id != self.client_id:
            return []
        if self._ack_observer is not None:
            self._ack_observer(ack)  # every Ack addressed to us, a second one of a settled update too
        if not self.outbox.acknowledge(ack.update_id):
            return []  # a second Ack of an update already settled
        if ack.accepted:
            log.info("round %d update %s accepted", ack.round, ack.update_id)
            return []
        # Every negative Ack is final (section 8): the update is out of the outbox already.
        log.warning("round %d update %s rejected: %s", ack.round, ack.update_id, ack.reason)
        if ack.reason == AckReason.UNKNOWN_CLIENT:
            return self.hello()  # the gateway never saw our hello (section 8: send one)
        return []

    def _resend_all(self, now: float, why: str = "") -> list[Outgoing]:
        out: list[Outgoing] = []
        for entry in self.outbox.pending():
            log.info("%sresending update %s for round %d", why, entry.update_id, entry.round)
            out += self._update_packets(entry.message)
        if out:
            self._last_sent = now
        return out

    def _update_packets(self, message: bytes) -> list[Outgoing]:
        # A compact update (written only for a 1.2 gateway) goes out as a bare frame when it fits a packet.
        return self._packets(self.topics.update(self.client_id), message, bare=is_compact(message))

    def _packets(self, topic: str, message: bytes, *, retain: bool = False, bare: bool = False) -> list[Outgoing]:
        chunks = split_message(message, self.config.max_packet_bytes, bare=bare)
        return [Outgoing(topic, c, retain=retain) for c in chunks]
