"""A test's gateway side of the wire, written against ``fmfl.protocol`` only (no ``fmfl.aggregator``): it
publishes global models (dense on ``global/{i}``, deltas on ``delta/{i}``, one retained chunk per topic),
round tasks and Acks, and collects the updates a real ``fmfl client`` process sends.

Small packets (4 KiB) exercise chunking. With ``run`` set it speaks protocol 1.2 (every chunk, model, task
and Ack names the run); without, it is a gateway that names no run.
"""

from __future__ import annotations

import queue
import time

import numpy as np

from fmfl.mqtt import make_client, parse_broker_url
from fmfl.protocol import (
    Ack,
    ClientUpdate,
    GlobalModel,
    Limits,
    Reassembler,
    RoundTask,
    Topics,
    UpdateEncoder,
    split_message,
)

PACKET = 4096


class WireGateway:
    def __init__(self, url: str, size: int, *, federation: str = "test", run: int | None = None) -> None:
        opts = parse_broker_url(url)
        self.topics = Topics(federation)
        self.run = run
        self.client = make_client("test-gateway", opts, clean_session=True)
        self.updates: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.client.on_message = lambda _c, _u, m: self.updates.put((m.topic, bytes(m.payload)))
        self.client.connect(opts.host, opts.port)
        self.client.loop_start()
        self.client.subscribe(self.topics.all_updates, qos=1)
        self.limits = Limits.for_vector_size(size)
        self.reassembler = Reassembler(self.limits.max_message_bytes)
        self.n = size

    def publish(self, topic: str, message: bytes, retain: bool = True) -> None:
        for chunk in split_message(message, PACKET, run=self.run):
            self.client.publish(topic, chunk, qos=1, retain=retain).wait_for_publish(5)

    def publish_model(self, model: GlobalModel) -> None:
        """Chunk i is retained on its own topic (``delta/{i}`` for a delta), so a device that connects later
        gets them all."""
        topic = self.topics.global_model_chunk if model.base_version is None else self.topics.global_delta_chunk
        for i, chunk in enumerate(split_message(model.to_bytes(), PACKET, run=self.run)):
            self.client.publish(topic(i), chunk, qos=1, retain=True).wait_for_publish(5)

    def send_global(self, bundle_id: str, version: int, weights: np.ndarray) -> None:
        payload = UpdateEncoder("dense", self.n).encode(weights)
        self.publish_model(GlobalModel(bundle_id, version, None, payload, run=self.run))

    def send_task(self, bundle_id: str, round_: int, version: int, selected: tuple[str, ...],
                  local_steps: int | None = None) -> None:  # fmt: skip
        """A retained task (one local epoch, or ``local_steps``) with the default codec and error feedback."""
        task = RoundTask(federation=self.topics.federation, bundle_id=bundle_id, round=round_, model_version=version,
                         selected=selected, batch_size=32, lr=0.01, codec="topk:0.05+int8+ef",
                         deadline=time.time() + 120, seed=1, local_steps=local_steps,
                         local_epochs=None if local_steps else 1, run=self.run)  # fmt: skip
        self.publish(self.topics.task, task.to_bytes())

    def next_update(self, bundle_id: str, timeout: float = 120) -> ClientUpdate:
        """The next complete update (either form; a compact one takes its ids from the topic and ``bundle_id``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                topic, payload = self.updates.get(timeout=1)
            except queue.Empty:
                continue
            message = self.reassembler.add(payload, source=topic)
            if message is not None:
                return ClientUpdate.decode(message, self.limits, federation=self.topics.federation,
                                           client_id=topic.rsplit("/", 1)[1], bundle_id=bundle_id)  # fmt: skip
        raise TimeoutError("no update from the device")

    def ack(self, update: ClientUpdate, accepted: bool = True, reason: str = "", detail: str = "") -> None:
        ack = Ack(update.client_id, update.round, update.update_id, accepted, reason=reason, detail=detail,
                  run=self.run)  # fmt: skip
        self.publish(self.topics.ack(update.client_id), ack.to_bytes(), retain=False)

    def close(self) -> None:
        """Clear what it left retained, then disconnect."""
        chunks = [self.topics.global_model_chunk(i) for i in range(64)]
        chunks += [self.topics.global_delta_chunk(i) for i in range(64)]
        for topic in (self.topics.task, *chunks):
            self.client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
        self.client.loop_stop()
        self.client.disconnect()
