"""A device written against the frozen protocol 1.1 (tests/fmfl_protocol_1_1): 1.2 gateways must serve it."""

from __future__ import annotations

import threading
import time
from typing import Any

import fmfl_protocol_1_1 as v11
import numpy as np
import paho.mqtt.client as mqtt


class DeviceV11:
    """A device written against the frozen 1.1 protocol: hello, status, task, global model, update, Ack.

    It trains nothing: its update is a fixed delta, so the gateway's model must move by exactly what it
    decodes. Like the 1.1 reference device, it drops a model version it holds and a round it has done.
    """

    def __init__(self, port: int, client_id: str, bundle_id: str, weights: np.ndarray) -> None:
        self.client_id, self.bundle_id = client_id, bundle_id
        self.topics = v11.Topics("default")
        self.limits = v11.Limits.for_vector_size(weights.size)
        self.reassembler = v11.Reassembler(2**26, 16)
        self.held = (0, weights)
        self.last_round = 0
        self.sent: dict[int, tuple[Any, np.ndarray]] = {}  # round -> (update, what the gateway decodes)
        self.acks: list[Any] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"v11-{client_id}")  # type: ignore[attr-defined]
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _publish(self, topic: str, message: bytes, retain: bool = False) -> None:
        for chunk in v11.split_message(message):
            self.client.publish(topic, chunk, qos=1, retain=retain)

    def _on_connect(self, client: Any, *_args: Any) -> None:
        t = self.topics
        client.subscribe([(t.task, 1), (t.global_model, 1), (t.ack(self.client_id), 1)])
        hello = v11.ClientHello(self.client_id, {"cores": 1}, self.bundle_id, self.held[0])
        self._publish(t.hello(self.client_id), hello.to_bytes(), retain=True)
        self._publish(t.status(self.client_id), v11.ClientStatus(self.client_id, True).to_bytes(), retain=True)

    def _on_message(self, _client: Any, _userdata: Any, msg: Any) -> None:
        if not msg.payload:
            return
        try:
            kind, _ = self.topics.parse(msg.topic)
            data = self.reassembler.add(bytes(msg.payload), source=kind)
            if data is None:
                return
            with self.lock:
                if kind == "global":
                    self._on_model(v11.GlobalModel.from_bytes(data, self.limits))
                elif kind == "task":
                    self._on_task(v11.RoundTask.from_bytes(data, self.limits))
                elif kind == "ack":
                    self.acks.append(v11.Ack.from_bytes(data, self.limits))
        except v11.ProtocolError as exc:  # a 1.1 reader must read every 1.2 gateway message
            self.errors.append(f"{msg.topic}: {exc}")

    def _on_model(self, model: Any) -> None:
        if model.model_version > self.held[0] and model.base_version is None:
            weights = v11.decode_update(model.payload, self.held[1].size, self.limits).to_dense()
            self.held = (model.model_version, weights)

    def _on_task(self, task: Any) -> None:
        if self.client_id not in task.selected or task.round <= self.last_round or task.deadline < time.time():
            return
        if task.model_version != self.held[0]:
            self.errors.append(f"round {task.round} trains v{task.model_version}, device holds v{self.held[0]}")
            return
        self.last_round = task.round
        delta = np.full(self.held[1].size, 0.01 * task.round, dtype=np.float32)
        payload, sent = v11.UpdateEncoder(task.codec, delta.size, seed=task.seed).encode_sparse(delta)
        update = v11.ClientUpdate(
            federation="default", bundle_id=self.bundle_id, round=task.round, model_version=task.model_version,
            client_id=self.client_id, num_samples=10, update_id=v11.new_update_id(), payload=payload,
        )  # fmt: skip
        self.sent[task.round] = (update, sent.to_dense())
        self._publish(self.topics.update(self.client_id), update.to_bytes())

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
