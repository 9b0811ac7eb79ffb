"""A tiny third-party device written from docs/protocol.md alone (no fmfl runner, no training): it follows
the newest run, holds the global model's version, answers each task that selects it with a small random
update, and keeps an outbox it resends until Acked. Switches make it break one rule at a time."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import numpy as np

from fmfl.mqtt import connect_with_backoff, make_client, parse_broker_url
from fmfl.protocol import (
    Ack,
    ClientHello,
    ClientStatus,
    ClientUpdate,
    GlobalModel,
    Limits,
    ProtocolError,
    Reassembler,
    RoundTask,
    Topics,
    UpdateEncoder,
    new_update_id,
    split_message,
)


class TinyDevice:
    def __init__(
        self,
        url: str,
        client_id: str,
        federation: str,
        bundle_id: str,
        size: int,
        *,
        says_hello: bool = True,
        drops_refused: bool = True,
        resend_after: float = 1.0,
    ) -> None:
        self.opts = parse_broker_url(url)
        self.cid, self.bundle_id, self.size = client_id, bundle_id, size
        self.topics = Topics(federation)
        self.says_hello, self.drops_refused, self.resend_after = says_hello, drops_refused, resend_after
        self.limits = Limits.for_vector_size(size)
        self.reassembler = Reassembler(self.limits.max_message_bytes)
        self.inbox: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.stop_event = threading.Event()
        self.run, self.held, self.last_round = 0, 0, 0
        self.task: RoundTask | None = None
        self.outbox: dict[str, bytes] = {}
        self.rng = np.random.default_rng(0)
        offline = split_message(ClientStatus(client_id, online=False).to_bytes())[0]
        self.client = make_client(f"tiny-{client_id}", self.opts, will=(self.topics.status(client_id), offline))
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, m: self.inbox.put((m.topic, bytes(m.payload)))
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _publish(self, topic: str, message: bytes, retain: bool = False) -> None:
        for chunk in split_message(message):
            self.client.publish(topic, chunk, qos=1, retain=retain)

    def _on_connect(self, client: Any, *_args: Any) -> None:
        t = self.topics
        client.subscribe([(t.task, 1), (t.global_model, 1), (t.ack(self.cid), 1)])  # before the hello
        self._publish(t.status(self.cid), ClientStatus(self.cid, online=True).to_bytes(), retain=True)
        if self.says_hello:
            hello = ClientHello(self.cid, {"protocol": "1.2"}, self.bundle_id, self.held)
            self._publish(t.hello(self.cid), hello.to_bytes(), retain=True)
        for message in self.outbox.values():
            self._publish(t.update(self.cid), message)

    def leave_in_outbox(self, round_: int) -> TinyDevice:
        """An unacknowledged update of an earlier session's round, resent on connect."""
        update = ClientUpdate(
            federation=self.topics.federation,
            bundle_id=self.bundle_id,
            round=round_,
            model_version=0,
            client_id=self.cid,
            num_samples=10,
            update_id=new_update_id(),
            payload=UpdateEncoder("topk:4", self.size).encode(np.ones(self.size, np.float32)),
        )
        self.outbox[update.update_id] = update.to_bytes()
        return self

    def start(self) -> TinyDevice:
        connect_with_backoff(self.client, self.opts)
        self.client.loop_start()
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(10)
        self.client.disconnect()
        self.client.loop_stop()

    def _loop(self) -> None:
        last_send = time.monotonic()
        while not self.stop_event.is_set():
            if self.outbox and time.monotonic() - last_send > self.resend_after:
                last_send = time.monotonic()
                for message in list(self.outbox.values()):
                    self._publish(self.topics.update(self.cid), message)
            try:
                topic, payload = self.inbox.get(timeout=0.1)
            except queue.Empty:
                continue
            if not payload:
                continue
            try:
                self._handle(topic.split("/")[2], self.reassembler.add(payload, source=topic.rsplit("/", 1)[0]))
            except ProtocolError:
                continue
            if self.task is not None and self.task.model_version == self.held:
                self._answer(self.task)
                last_send = time.monotonic()

    def _handle(self, kind: str, data: bytes | None) -> None:
        if data is None:
            return
        if kind == "task":
            task = RoundTask.from_bytes(data, self.limits)
            run = task.run or 0
            if run >= self.run and self.cid in task.selected and task.round > self.last_round:
                self.run, self.task = run, task
        elif kind == "global":
            model = GlobalModel.from_bytes(data, self.limits)
            run = model.run or 0
            if run > self.run or (run == self.run and model.model_version > self.held):
                self.run, self.held = run, model.model_version
                if self.task is not None and (self.task.run or 0) < run:
                    self.task = None
        elif kind == "ack":
            ack = Ack.from_bytes(data, self.limits)
            if ack.accepted or self.drops_refused:
                self.outbox.pop(ack.update_id, None)

    def _answer(self, task: RoundTask) -> None:
        self.task, self.last_round = None, task.round
        delta = self.rng.normal(0, 0.01, self.size).astype(np.float32)
        update = ClientUpdate(
            federation=task.federation,
            bundle_id=self.bundle_id,
            round=task.round,
            model_version=task.model_version,
            client_id=self.cid,
            num_samples=10,
            update_id=new_update_id(),
            payload=UpdateEncoder(task.codec, self.size).encode(delta),
            metrics={"train_loss": 1.0},
            run=task.run,
        )
        self.outbox[update.update_id] = update.wire_bytes()
        self._publish(self.topics.update(self.cid), self.outbox[update.update_id])
