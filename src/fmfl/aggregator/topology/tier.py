"""Tiered aggregation: this gateway is one client of a parent gateway.

A site gateway (federation ``site-a``) serves its own devices and, towards the parent (federation
``top``), behaves exactly like a device: it says hello, waits for a RoundTask selecting it, trains
(= runs one local round on the parent's global model) and sends one ClientUpdate: the local
sample-weighted mean delta, with ``num_samples`` = the local total weight. The parent's FedAvg over
its gateways is then the FedAvg over every device below them (Σ_g N_g mean_g / Σ_g N_g = Σ_i n_i d_i /
Σ_i n_i), up to the float32 rounding of each gateway's mean on the wire (``dense`` codec; a lossy
``--upstream-codec`` trades that for bytes). Only the FedAvg family composes this way, so the lower
tier must run one of them; the parent may run any rule, each gateway being one client to it.

Both tiers' topics can live on one broker (different federations), or on two brokers joined by an
MQTT bridge that forwards ``fmfl/{parent}/#`` (docs/scaling.md): this gateway keeps one connection.

Crash safety: the update sent upstream is written to ``upstream-pending.bin`` before it is published
and resent until the parent's Ack arrives, across restarts; the parent deduplicates by update id.

Signed updates: with ``signing_key`` (the ``signing.key`` this gateway got as a device of the parent
federation) the update is signed before it is written, so a parent running ``--device-registry`` accepts
it and a resend is the same signed bytes. The devices' own signatures end at this tier: the mean is a new
message, signed by the gateway that computed it.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fmfl.aggregation.accumulator import WeightedSum
from fmfl.aggregation.sparse import Float32Array
from fmfl.aggregator.core.outbound import Outgoing
from fmfl.durable import atomic_write
from fmfl.errors import ConfigError, FmflError
from fmfl.protocol import (
    Ack,
    ClientHello,
    ClientStatus,
    ClientUpdate,
    CodecSpec,
    GlobalModel,
    Limits,
    ProtocolError,
    Reassembler,
    RoundTask,
    Topics,
    UpdateEncoder,
    check_id,
    decode_update,
    new_update_id,
    split_message,
)

log = logging.getLogger(__name__)

PENDING_FILE = "upstream-pending.bin"
STATE_FILE = "upstream.json"


@dataclass(frozen=True)
class UpstreamConfig:
    """Where the parent is (its federation on this broker) and who we are to it."""

    federation: str
    client_id: str
    codec: str = "dense"
    resend_s: float = 10.0
    signing_key: Path | None = None  # sign each upstream update (a parent with --device-registry)

    def __post_init__(self) -> None:
        try:
            check_id(self.federation, "upstream federation")
            check_id(self.client_id, "upstream client id")
            CodecSpec.parse(self.codec)
        except ProtocolError as exc:
            raise ConfigError(str(exc)) from exc


class UpstreamTier:
    """The parent-facing side of a lower-tier gateway (no MQTT inside; the engine routes to it)."""

    def __init__(
        self,
        config: UpstreamConfig,
        *,
        bundle_id: str,
        size: int,
        state_dir: Path,
        max_packet_bytes: int,
        capabilities: dict[str, str | int] | None = None,
    ) -> None:
        self.config = config
        self.bundle_id = bundle_id
        self.size = size
        self.limits = Limits.for_vector_size(size)
        self.topics = Topics(config.federation)
        self.state_dir = state_dir
        self.max_packet_bytes = max_packet_bytes
        self.capabilities = dict(capabilities or {"role": "gateway"})
        self._reassembler = Reassembler(max(64 * 2**20, 4 * self.limits.max_message_bytes), 64)
        self._task: RoundTask | None = None
        self._models: dict[int, Float32Array] = {}
        self._held: tuple[int, Float32Array] | None = None
        self._pending: ClientUpdate | None = None
        self._last_sent = 0.0
        self._signing_key: Any = None
        if config.signing_key is not None:
            from fmfl.trust.update_signing import load_signing_key

            self._signing_key = load_signing_key(config.signing_key)
        self.answered_round = self._load_state()

    # --- persistence -------------------------------------------------------------------------------

    def _load_state(self) -> int:
        path = self.state_dir / STATE_FILE
        answered = int(json.loads(path.read_text())["answered_round"]) if path.exists() else 0
        pending = self.state_dir / PENDING_FILE
        if pending.exists():
            try:
                self._pending = ClientUpdate.from_bytes(pending.read_bytes(), self.limits)
            except ProtocolError as exc:
                raise FmflError(f"{pending} is corrupt ({exc}); remove it to drop that update") from exc
        return answered

    def _save_state(self) -> None:
        atomic_write(self.state_dir / STATE_FILE, json.dumps({"answered_round": self.answered_round}).encode())

    # --- MQTT surface ------------------------------------------------------------------------------

    def subscriptions(self) -> list[str]:
        return [self.topics.task, self.topics.global_model, self.topics.ack(self.config.client_id)]

    def owns(self, topic: str) -> bool:
        return topic.startswith(self.topics.root + "/")

    def start(self) -> list[Outgoing]:
        """Announce ourselves to the parent (online status retained, then a hello), resend a pending update."""
        cid = self.config.client_id
        status = split_message(ClientStatus(cid, True).to_bytes(), self.max_packet_bytes)
        hello = ClientHello(cid, dict(self.capabilities), bundle_id=self.bundle_id)
        out = [Outgoing(self.topics.status(cid), c, retain=True) for c in status]
        out += [Outgoing(self.topics.hello(cid), c) for c in split_message(hello.to_bytes(), self.max_packet_bytes)]
        if self._pending is not None:
            out += self._send(self._pending)
        return out

    def handle(self, topic: str, payload: bytes) -> list[Outgoing]:
        if not payload:
            return []
        try:
            data = self._reassembler.add(payload, source="global" if "/global/" in topic else topic)
            if data is None:
                return []
            if topic == self.topics.task:
                self._on_task(RoundTask.from_bytes(data, self.limits))
            elif topic == self.topics.ack(self.config.client_id):
                self._on_ack(Ack.from_bytes(data, self.limits))
            else:
                self._on_model(GlobalModel.from_bytes(data, self.limits))
        except ProtocolError as exc:
            log.warning("upstream: ignored a bad message on %s: %s", topic, exc)
        return []

    def _on_task(self, task: RoundTask) -> None:
        if task.bundle_id != self.bundle_id:
            log.warning("upstream task for bundle %s, ours is %s: ignored", task.bundle_id, self.bundle_id)
            return
        self._task = task

    def _on_model(self, model: GlobalModel) -> None:
        if model.bundle_id != self.bundle_id:
            return
        values = decode_update(model.payload, self.size, self.limits)
        if model.base_version is None:
            weights = values.to_dense()
        elif self._held is not None and self._held[0] == model.base_version:
            weights = self._held[1].copy()
            weights[values.indices] = (weights[values.indices] + values.values).astype(np.float32)
        else:
            return  # a delta from a version we do not hold: wait for a dense model
        self._held = (model.model_version, weights)
        self._models = {model.model_version: weights}

    def _on_ack(self, ack: Ack) -> None:
        if self._pending is not None and ack.update_id == self._pending.update_id:
            if not ack.accepted:
                log.warning("the parent refused our round-%d update: %s", ack.round, ack.reason)
            self._pending = None
            (self.state_dir / PENDING_FILE).unlink(missing_ok=True)

    # --- rounds ------------------------------------------------------------------------------------

    def will(self) -> tuple[str, bytes]:
        """The MQTT will: offline on our status topic at the parent, as a device's."""
        cid = self.config.client_id
        return self.topics.status(cid), split_message(ClientStatus(cid, False).to_bytes())[0]

    def ready(self, now: float) -> tuple[RoundTask, Float32Array] | None:
        """The parent's task selecting us that we have not answered, with its model, if both are here."""
        task = self._task
        if task is None or task.round <= self.answered_round or self.config.client_id not in task.selected:
            return None
        if task.deadline < now:
            return None
        weights = self._models.get(task.model_version)
        return None if weights is None else (task, weights)

    def begin(self, task: RoundTask) -> None:
        """A local round now works for the parent's round ``task.round`` (answered once, even if it fails)."""
        self.answered_round = task.round
        self._save_state()

    def forward(self, task: RoundTask, total: WeightedSum, metrics: dict[str, float]) -> list[Outgoing]:
        """Send the local round's weighted mean delta upstream as one ClientUpdate."""
        mean = (total.sum / total.total_weight).astype(np.float32)
        payload = UpdateEncoder(self.config.codec, self.size, seed=task.seed).encode(mean)
        update = ClientUpdate(
            federation=self.config.federation,
            bundle_id=self.bundle_id,
            round=task.round,
            model_version=task.model_version,
            client_id=self.config.client_id,
            num_samples=max(1, round(total.total_weight)),
            update_id=new_update_id(),
            payload=payload,
            metrics={k: v for k, v in metrics.items() if np.isfinite(v)},
            run=task.run,  # the parent's run (protocol 1.2), so a newer parent run refuses it as wrong_run
        )
        if self._signing_key is not None:
            from fmfl.trust.update_signing import sign_update

            update = sign_update(update, self._signing_key)
        atomic_write(self.state_dir / PENDING_FILE, update.to_bytes())  # before it can be acknowledged
        self._pending = update
        return self._send(update)

    def _send(self, update: ClientUpdate) -> list[Outgoing]:
        self._last_sent = time.monotonic()
        topic = self.topics.update(self.config.client_id)
        return [Outgoing(topic, c) for c in split_message(update.to_bytes(), self.max_packet_bytes)]

    def tick(self) -> list[Outgoing]:
        """Resend the pending update until the parent acknowledges it."""
        if self._pending is None or time.monotonic() - self._last_sent < self.config.resend_s:
            return []
        return self._send(self._pending)
