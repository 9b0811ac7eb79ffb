"""Run identity (protocol 1.2): what a gateway starting a new run learns from, and clears of, earlier runs.

A federation's broker may still hold an earlier run's retained task (its deadline possibly in the
future, selecting devices) and global-model chunks (possibly more topics than the new model needs).
Before the first round of a new run the gateway reads them once, over a short-lived clean session, so
that

- its run id is newer than any earlier run's (``run = max(now in ms, newest + 1)``, so a gateway whose
  clock lags still starts a newer run),
- its round numbers and model versions continue after the earlier run's (never repeated within a
  federation: a 1.1 device drops a model version it already holds, and a task round it already did),
- and it knows which retained topics to clear (every chunk topic its own model does not overwrite, and
  the task until its first task replaces it).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fmfl.aggregator.core.intake import reassembler_for
from fmfl.mqtt import MqttOptions, connect_with_backoff, make_client
from fmfl.protocol import GlobalModel, Limits, ProtocolError, RoundTask, Topics

log = logging.getLogger(__name__)

QUIET_S = 0.5  # retained messages arrive right after the SUBACK: this long without one means all are in
READ_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class PriorRun:
    """What earlier runs left retained on the broker (all zero/empty for a clean broker)."""

    run: int = 0  # the newest run id seen (0: none, or only 1.1 gateways)
    last_round: int = 0  # the highest round of a retained task
    last_version: int = -1  # the highest model version of a retained task or model (-1: none)
    task_retained: bool = False
    chunk_topics: frozenset[int] = field(default_factory=frozenset)  # indices of retained global/{i}
    delta_topics: frozenset[int] = field(default_factory=frozenset)  # indices of retained delta/{i} (2b)

    @property
    def first_round(self) -> int:
        return self.last_round + 1

    @property
    def first_version(self) -> int:
        return self.last_version + 1

    def new_run_id(self, now: float) -> int:
        return max(int(now * 1000), self.run + 1)


def prior_from_retained(messages: Iterable[tuple[str, bytes]], topics: Topics, limits: Limits) -> PriorRun:
    """Fold the retained ``(topic, payload)`` messages of the task and global topics into a ``PriorRun``.

    Unreadable messages still count as retained topics to clear; their numbers are just unknown.
    """
    run, last_round, last_version, task_retained, chunks, deltas = 0, 0, -1, False, set(), set()
    reassembler = reassembler_for(limits, max_pending=16)
    for topic, payload in messages:
        if not payload:
            continue
        try:
            kind, index = topics.parse(topic)
        except ProtocolError:
            continue
        if kind == "global" and index is not None:
            chunks.add(int(index))
        elif kind == "delta" and index is not None:
            deltas.add(int(index))
        elif kind == "task":
            task_retained = True
        else:
            continue
        try:
            data = reassembler.add(payload, source=kind)
            if data is None:
                continue
            message = RoundTask.from_bytes(data, limits) if kind == "task" else GlobalModel.from_bytes(data, limits)
        except ProtocolError as exc:
            log.warning("an earlier run's retained message on %s is unreadable (%s); it is cleared", topic, exc)
            continue
        run = max(run, message.run or 0)
        last_version = max(last_version, message.model_version)
        if isinstance(message, RoundTask):
            last_round = max(last_round, message.round)
    return PriorRun(run, last_round, last_version, task_retained, frozenset(chunks), frozenset(deltas))


def read_prior_run(opts: MqttOptions, topics: Topics, limits: Limits) -> PriorRun:
    """Read what the broker holds retained under ``topics`` (a clean session of its own), then disconnect."""
    received: list[tuple[str, bytes]] = []
    lock = threading.Lock()
    subscribed = threading.Event()
    last = [time.monotonic()]

    def on_message(_client: Any, _userdata: Any, msg: Any) -> None:
        if msg.retain:
            with lock:
                received.append((msg.topic, bytes(msg.payload)))
                last[0] = time.monotonic()

    def on_subscribe(*_args: Any) -> None:
        last[0] = time.monotonic()
        subscribed.set()

    def on_connect(client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any = None) -> None:
        if not getattr(reason, "is_failure", False):
            client.subscribe([(topics.task, 1), (topics.global_model, 1), (topics.global_delta, 1)])

    client = make_client(f"fmfl-run-probe-{uuid.uuid4().hex[:12]}", opts, clean_session=True)
    client.on_message = on_message
    client.on_subscribe = on_subscribe
    client.on_connect = on_connect
    connect_with_backoff(client, opts)
    client.loop_start()
    try:
        deadline = time.monotonic() + READ_TIMEOUT_S
        if subscribed.wait(READ_TIMEOUT_S):
            while time.monotonic() < deadline and time.monotonic() - last[0] < QUIET_S:
                time.sleep(0.05)
        else:
            log.warning("no SUBACK while reading the retained state: assuming a clean federation")
    finally:
        client.disconnect()
        client.loop_stop()
    with lock:
        return prior_from_retained(received, topics, limits)
